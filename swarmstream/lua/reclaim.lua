-- Take over entries idle for longer than min-idle (their worker died or a retry
-- is due), and report each one's delivery count.
-- A claimed entry's first delivery was at least min-idle ago: that bound goes to
-- the leases zset (ZADD NX keeps an earlier time recorded by its last holder).
-- KEYS[1] task stream, KEYS[2] leases zset. ARGV[1] group, ARGV[2] consumer,
-- ARGV[3] min idle ms, ARGV[4] start id, ARGV[5] count. Protocol 1.1: KEYS[3] the
-- spec's stats hash, whose 'redelivered' counts the entries taken over (each one a
-- delivery that the group's entries-read does not count).
-- Protocol 1.2: KEYS[4] the spec's due set, KEYS[5] its scan lock; ARGV[6] scan
-- period ms, ARGV[7] most due entries one scan lists. Instead of each worker walking
-- the pending list with its own XAUTOCLAIM cursor (a swarm's cursors move together,
-- and a long list is never covered in time), one caller per scan period (SET NX PX)
-- lists the whole group's idle entries (XPENDING IDLE), takes what it has room for
-- and leaves the rest in the due set, from which every caller first takes (SPOP,
-- then XCLAIM with min-idle, so a stale id is harmless). ARGV[4] is then unused.
-- Returns {next start id, {id, fields, deliveries, ...}, {vanished ids}}: entries
-- deleted from the stream while pending. Redis 7 drops those from the pending
-- list itself (XAUTOCLAIM lists them in its third reply, XCLAIM leaves them out);
-- Redis 6.2 returns them as nil but leaves them pending (now ours), so they are
-- found and acked here.
local t = redis.call('TIME')
local since = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) - tonumber(ARGV[3])
local out, vanished = {}, {}

local function took(id, fields, deliveries)
  redis.call('ZADD', KEYS[2], 'NX', since, id)
  out[#out + 1] = id
  out[#out + 1] = fields
  out[#out + 1] = deliveries
end

-- Claim one id listed as pending and idle (p: its XPENDING row, or nil to look).
local function claim(id, p)
  if not p then
    local rows = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], id, id, 1)
    p = rows[1]
    if not p then return end -- acked, or renewed since it was listed
  end
  local r = redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], id)
  local e = r[1]
  if type(e) == 'table' and e[2] then
    took(id, e[2], tonumber(p[4]) + 1)
  elseif e == nil then
    -- Redis 7: deleted from the stream while pending; XCLAIM dropped it
    if #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1) == 0 then
      vanished[#vanished + 1] = id
    end
  else
    -- Redis 6.2: deleted, now pending under us
    redis.call('XACK', KEYS[1], ARGV[1], id)
    vanished[#vanished + 1] = id
  end
end

local next_start = '0-0'
if KEYS[4] then
  local want = tonumber(ARGV[5])
  for _, id in ipairs(redis.call('SPOP', KEYS[4], want)) do claim(id, nil) end
  if #out < want * 3 and redis.call('SET', KEYS[5], ARGV[2], 'NX', 'PX', ARGV[6]) then
    local rows = redis.call('XPENDING', KEYS[1], ARGV[1], 'IDLE', ARGV[3], '-', '+', ARGV[7])
    local left = {}
    for _, p in ipairs(rows) do
      if #out < want * 3 then claim(p[1], p) else left[#left + 1] = p[1] end
    end
    for i = 1, #left, 1000 do
      redis.call('SADD', KEYS[4], unpack(left, i, math.min(i + 999, #left)))
    end
    if #left > 0 then redis.call('PEXPIRE', KEYS[4], math.max(10000, 10 * tonumber(ARGV[6]))) end
  end
else
  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
  next_start = r[1]
  local claimed, holes = {}, 0
  for _, e in ipairs(r[2]) do
    if type(e) == 'table' then
      local id = e[1]
      local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
      claimed[id] = true
      took(id, e[2], p[1] and p[1][4] or 1)
    else
      holes = holes + 1
    end
  end
  for _, id in ipairs(r[3] or {}) do vanished[#vanished + 1] = id end
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
end
for _, id in ipairs(vanished) do redis.call('ZREM', KEYS[2], id) end
if KEYS[3] and #out > 0 then redis.call('HINCRBY', KEYS[3], 'redelivered', #out / 3) end
return {next_start, out, vanished}
