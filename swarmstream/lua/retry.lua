-- A failed attempt that will be retried: keep the entry pending, store the
-- error, and back-date its idle time so that any worker's XAUTOCLAIM takes it
-- once the backoff has passed (raising the delivery count = the attempt). Its
-- first delivery time goes to the leases zset first (back-dating hides it).
-- KEYS[1] task stream, KEYS[2] err key, KEYS[3] stats, KEYS[4] leases zset.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id, ARGV[4] idle ms to set,
-- ARGV[5] error payload, ARGV[6] error TTL (s). Returns 1, or -1 lease lost.
local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not p[1] or p[1][2] ~= ARGV[2] then return -1 end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[4], 'NX', now - tonumber(p[1][3]), ARGV[3])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
redis.call('HINCRBY', KEYS[3], 'retried', 1)
return 1
