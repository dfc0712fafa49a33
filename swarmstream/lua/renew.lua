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
-- Batched: one XPENDING lists this consumer's own entries, then one ZADD and one
-- XCLAIM per 500 of them; only an id it no longer holds costs an XPENDING of its
-- own. (The entries a worker holds are at most a few times its concurrency.)
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = #ARGV - 2
local own = {}
for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', n + 10000, ARGV[2])) do
  own[p[1]] = p[3]
end
local taken, gone, ids, zadd = {}, {}, {}, {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local idle = own[id]
  if not idle then -- not listed: look at it alone
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    if not p[1] then
      gone[#gone + 1] = id
    elseif p[1][2] ~= ARGV[2] then
      taken[#taken + 1] = id
    else
      idle = p[1][3]
    end
  end
  if idle then
    ids[#ids + 1] = id
    zadd[#zadd + 1] = now - tonumber(idle)
    zadd[#zadd + 1] = id
  end
end
for i = 1, #ids, 500 do
  local j = math.min(i + 499, #ids)
  redis.call('ZADD', KEYS[2], 'NX', unpack(zadd, 2 * i - 1, 2 * j))
  local claim = {KEYS[1], ARGV[1], ARGV[2], 0}
  for k = i, j do claim[#claim + 1] = ids[k] end
  claim[#claim + 1] = 'JUSTID'
  redis.call('XCLAIM', unpack(claim))
end
return {taken, gone}
