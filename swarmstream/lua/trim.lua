-- Trim a task stream by MINID to the oldest entry that some group still needs:
-- the smallest pending id, or the last delivered id. Never drops an entry that
-- is undelivered or un-acked. Also drops from the leases zset the oldest members
-- that are no longer pending (acked by a plain XACK, or the group was recreated),
-- a few per call. KEYS[1] task stream, KEYS[2] leases zset. Returns entries removed.
-- Protocol 1.2: KEYS[3] the spec's trim lock, ARGV[1] the trim period ms: one caller
-- per period trims (SET NX PX), the others return -1 at once; the smallest pending
-- id is read with XPENDING - + 1 (the summary form walks every consumer).
if KEYS[3] and not redis.call('SET', KEYS[3], '1', 'NX', 'PX', ARGV[1]) then return -1 end
local function lower(a, b)
  if a == nil then return b end
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  if bms < ams or (bms == ams and bseq < aseq) then return b end
  return a
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, 15)) do
  local gone = true
  for _, g in ipairs(groups) do
    local name = nil
    for i = 1, #g, 2 do if g[i] == 'name' then name = g[i + 1] end end
    if #redis.call('XPENDING', KEYS[1], name, id, id, 1) > 0 then gone = false end
  end
  if gone then redis.call('ZREM', KEYS[2], id) end
end
local minid = nil
for _, g in ipairs(groups) do
  local name, last = nil, nil
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  minid = lower(minid, last)
  local oldest = redis.call('XPENDING', KEYS[1], name, '-', '+', 1)
  if oldest[1] then minid = lower(minid, oldest[1][1]) end
end
if minid == nil or minid == '0-0' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', minid)
