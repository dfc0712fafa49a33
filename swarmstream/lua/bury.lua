-- Dead-letter one entry: write the dead letter, the task's final finding (if the
-- task id is known and it has none yet), and ack, atomically. Fenced.
-- KEYS[1] task stream, KEYS[2] findings stream, KEYS[3] dead stream, KEYS[4] stats,
-- KEYS[5] done key, KEYS[6] err key (both may be placeholders when no task id),
-- KEYS[7] leases zset.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id, ARGV[4] done TTL,
-- ARGV[5] findings MAXLEN, ARGV[6] dead MAXLEN, ARGV[7] task id ('' = none),
-- ARGV[8] shard, ARGV[9] status, ARGV[10] finding body, ARGV[11..] dead fields.
-- Returns 1 buried, -1 lease lost.
-- Protocol 1.1 (10 KEYS): KEYS[8] the task's history hash, KEYS[9] the spec's usage
-- hash, KEYS[10] its usage:workers hash; then ARGV[11] is the last attempt's usage
-- (msgpack, as complete.lua; '' = none) and the dead fields start at ARGV[12]. The
-- history becomes the final finding's 'attempts' field; the usage is added to the
-- totals with that finding.
-- Usage totals (swarmstream.accounting): this block is the same in complete, retry and
-- bury.lua (each script is loaded on its own; tests/test_accounting.py checks it).
-- u = {model, input, output, cache_read, cache_write, cost, cost_computed}, cost ''
-- when unknown. tally() adds u to acc, one row per (model, shard) of a call; store()
-- turns the rows into the fields of the usage hash (the spec's total, per model, per
-- shard) and of the usage:workers hash, one HINCRBY(FLOAT) per field.
local MEASURES = {'input', 'output', 'cache_read', 'cache_write', 'cost', 'cost_computed',
  'attempts', 'unpriced'}
local FLOATS = {cost = true, cost_computed = true}  -- USD: HINCRBYFLOAT; the rest HINCRBY
local function tally(acc, u, shard)
  local model = u[1] or ''
  shard = shard or ''
  local key = model .. '\0' .. shard
  local a = acc[key]
  if not a then
    a = {model, shard, 0, 0, 0, 0, 0, 0, 0, 0}
    acc[key] = a
  end
  local tokens = false
  for j = 1, 6 do
    local v = tonumber(u[j + 1])
    if v ~= nil and v > 0 then
      a[j + 2] = a[j + 2] + v
      if j <= 4 then tokens = true end
    end
  end
  a[9] = a[9] + 1
  if tokens and tonumber(u[6]) == nil then a[10] = a[10] + 1 end
end
local function store(usage_key, workers_key, acc, worker)
  local tot, wtot = {}, {}
  for _, a in pairs(acc) do
    local prefixes = {''}
    if a[1] ~= '' then prefixes[#prefixes + 1] = 'model:' .. a[1] .. ':' end
    if a[2] ~= '' then prefixes[#prefixes + 1] = 'shard:' .. a[2] .. ':' end
    for j = 1, 8 do
      local v = a[j + 2]
      if v > 0 then
        local name = MEASURES[j]
        for _, p in ipairs(prefixes) do tot[p .. name] = (tot[p .. name] or 0) + v end
        wtot[worker .. ':' .. name] = (wtot[worker .. ':' .. name] or 0) + v
      end
    end
  end
  for _, pair in ipairs({{usage_key, tot}, {workers_key, wtot}}) do
    for name, v in pairs(pair[2]) do
      if FLOATS[string.match(name, '([^:]+)$')] then
        redis.call('HINCRBYFLOAT', pair[1], name, string.format('%.17g', v))
      else
        redis.call('HINCRBY', pair[1], name, v)
      end
    end
  end
end
-- The attempt records of a task's history hash (attempt number -> JSON object), as
-- one JSON array in attempt order.
local function history(key)
  local h = redis.call('HGETALL', key)
  if #h == 0 then return nil end
  local rows = {}
  for i = 1, #h, 2 do rows[#rows + 1] = {tonumber(h[i]) or 0, h[i + 1]} end
  table.sort(rows, function(a, b) return a[1] < b[1] end)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r[2] end
  return '[' .. table.concat(out, ',') .. ']'
end

local group, consumer, id = ARGV[1], ARGV[2], ARGV[3]
local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
if not p[1] or p[1][2] ~= consumer then return -1 end
local v11 = #KEYS >= 10
local fields = {}
for i = (v11 and 12 or 11), #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
if ARGV[7] ~= '' and redis.call('EXISTS', KEYS[5]) == 0 then
  local past = v11 and history(KEYS[8])
  local fid
  if past then
    fid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
      'task_id', ARGV[7], 'shard', ARGV[8], 'status', ARGV[9],
      'entry', id, 'worker', consumer, 'body', ARGV[10], 'attempts', past)
  else
    fid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
      'task_id', ARGV[7], 'shard', ARGV[8], 'status', ARGV[9],
      'entry', id, 'worker', consumer, 'body', ARGV[10])
  end
  redis.call('SET', KEYS[5], fid, 'EX', ARGV[4])
  redis.call('HINCRBY', KEYS[4], ARGV[9], 1)
  if v11 and ARGV[11] ~= '' then
    local acc = {}
    tally(acc, cmsgpack.unpack(ARGV[11]), ARGV[8])
    store(KEYS[9], KEYS[10], acc, consumer)
  end
end
if ARGV[7] ~= '' then
  redis.call('DEL', KEYS[6])
  if v11 then redis.call('DEL', KEYS[8]) end
end
redis.call('XACK', KEYS[1], group, id)
redis.call('ZREM', KEYS[7], id)
redis.call('HINCRBY', KEYS[4], 'buried', 1)
return 1
