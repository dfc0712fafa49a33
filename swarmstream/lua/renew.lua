-- Renew the leases of entries this consumer still owns: re-claim them with
-- JUSTID, which resets their idle time without raising the delivery count.
-- Never takes an entry that another consumer has reclaimed. On an entry's first
-- renewal its first delivery time (server clock minus its idle time) is recorded
-- in the spec's leases zset (ZADD NX keeps the earliest), so a monitor can tell
-- how long an entry has been in flight even while its lease is renewed.
-- KEYS[1] task stream, KEYS[2] leases zset. ARGV[1] group, ARGV[2] consumer,
-- ARGV[3..] entry ids.
-- Returns {taken, gone}: ids pending under another consumer now (lease lost),
-- and ids no longer pending at all (acked: finished, by this consumer or another).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local taken, gone = {}, {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if not p[1] then
    gone[#gone + 1] = ARGV[i]
  elseif p[1][2] ~= ARGV[2] then
    taken[#taken + 1] = ARGV[i]
  else
    redis.call('ZADD', KEYS[2], 'NX', now - tonumber(p[1][3]), ARGV[i])
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  end
end
return {taken, gone}
