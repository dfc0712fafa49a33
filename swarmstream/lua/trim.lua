-- Trim a task stream by MINID to the oldest entry that some group still needs:
-- the smallest pending id, or the last delivered id. Never drops an entry that
-- is undelivered or un-acked. KEYS[1] task stream. Returns entries removed.
local function lower(a, b)
  if a == nil then return b end
  local ams, aseq = string.match(a, '(%d+)-(%d+)')
  local bms, bseq = string.match(b, '(%d+)-(%d+)')
  ams, aseq, bms, bseq = tonumber(ams), tonumber(aseq), tonumber(bms), tonumber(bseq)
  if bms < ams or (bms == ams and bseq < aseq) then return b end
  return a
end
local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
local minid = nil
for _, g in ipairs(groups) do
  local name, last = nil, nil
  for i = 1, #g, 2 do
    if g[i] == 'name' then name = g[i + 1] end
    if g[i] == 'last-delivered-id' then last = g[i + 1] end
  end
  minid = lower(minid, last)
  local s = redis.call('XPENDING', KEYS[1], name)
  if s[1] > 0 then minid = lower(minid, s[2]) end
end
if minid == nil or minid == '0-0' then return 0 end
return redis.call('XTRIM', KEYS[1], 'MINID', '~', minid)
