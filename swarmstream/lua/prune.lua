-- Remove a consumer from its group, but only if it owns no pending entry
-- (XGROUP DELCONSUMER would otherwise drop them). KEYS[1] task stream.
-- ARGV[1] group, ARGV[2] consumer. Returns 1 removed, 0 kept.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2])
if #p > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
