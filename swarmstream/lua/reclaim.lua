-- Take over entries idle for longer than min-idle (their worker died or a retry
-- is due), and report each one's delivery count.
-- KEYS[1] task stream. ARGV[1] group, ARGV[2] consumer, ARGV[3] min idle ms,
-- ARGV[4] start id, ARGV[5] count.
-- Returns {next start id, {id, fields, deliveries, ...}, {deleted ids}}. On 6.2
-- a deleted entry comes back with an empty field list; 7.0+ drops it from the
-- pending list itself and lists its id in XAUTOCLAIM's third reply element.
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out = {}
for _, e in ipairs(r[2]) do
  if type(e) == 'table' then
    local id = e[1]
    local fields = e[2]
    if type(fields) ~= 'table' then fields = {} end
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    local deliveries = 1
    if p[1] then deliveries = p[1][4] end
    out[#out + 1] = id
    out[#out + 1] = fields
    out[#out + 1] = deliveries
  end
end
return {r[1], out, r[3] or {}}
