-- Record a pending entry that was deleted from the task stream while pending
-- (Redis 7's XAUTOCLAIM reports its id and drops it from the PEL): a dead letter with
-- no orig: fields and no finding (the task id died with the entry).
-- KEYS[1] dead stream, KEYS[2] stats hash.
-- ARGV[1] dead MAXLEN, ARGV[2..] the dead letter's fields (name, value, ...).
-- Returns the dead letter's entry id.
local fields = {}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', unpack(fields))
redis.call('HINCRBY', KEYS[2], 'buried', 1)
return id
