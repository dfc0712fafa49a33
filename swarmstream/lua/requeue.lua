-- Move a dead letter back to its task stream as a new entry, forget the task's
-- final finding marker so it can produce a finding again, and delete the dead
-- letter, atomically. KEYS[1] dead stream, KEYS[2] task stream, KEYS[3] done key.
-- ARGV[1] dead entry id, ARGV[2..] the original entry's fields.
-- Returns the new task entry id, or false if the dead letter is gone.
if #redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1]) == 0 then return false end
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields))
redis.call('DEL', KEYS[3])
redis.call('XDEL', KEYS[1], ARGV[1])
return id
