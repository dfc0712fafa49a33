-- Take over entries idle for longer than min-idle (their worker died or a retry
-- is due), and report each one's delivery count.
-- A claimed entry's first delivery was at least min-idle ago: that bound goes to
-- the leases zset (ZADD NX keeps an earlier time recorded by its last holder).
-- KEYS[1] task stream, KEYS[2] leases zset. ARGV[1] group, ARGV[2] consumer,
-- ARGV[3] min idle ms, ARGV[4] start id, ARGV[5] count. Protocol 1.1: KEYS[3] the
-- spec's stats hash, whose 'redelivered' counts the entries taken over (each one a
-- delivery that the group's entries-read does not count).
-- Returns {next start id, {id, fields, deliveries, ...}, {vanished ids}}: entries
-- deleted from the stream while pending. Redis 7 drops those from the pending
-- list itself and lists them in XAUTOCLAIM's third reply; Redis 6.2 returns them
-- as nil but leaves them pending (now ours), so they are found and acked here.
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local t = redis.call('TIME')
local since = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
local out, claimed, holes = {}, {}, 0
for _, e in ipairs(r[2]) do
  if type(e) == 'table' then
    local id = e[1]
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    claimed[id] = true
    redis.call('ZADD', KEYS[2], 'NX', since, id)
    out[#out + 1] = id
    out[#out + 1] = e[2]
    out[#out + 1] = p[1] and p[1][4] or 1
  else
    holes = holes + 1
  end
end
local vanished = r[3] or {}
if holes > 0 then
  local mine = redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1000, ARGV[2])
  for _, p in ipairs(mine) do
    local id = p[1]
    if not claimed[id] and #redis.call('XRANGE', KEYS[1], id, id) == 0 then
      redis.call('XACK', KEYS[1], ARGV[1], id)
      vanished[#vanished + 1] = id
    end
  end
end
for _, id in ipairs(vanished) do redis.call('ZREM', KEYS[2], id) end
if KEYS[3] and #out > 0 then redis.call('HINCRBY', KEYS[3], 'redelivered', #out / 3) end
return {r[1], out, vanished}
