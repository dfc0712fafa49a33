-- A failed attempt that will be retried: keep the entry pending, store the
-- error, and back-date its idle time so that any worker's XAUTOCLAIM takes it
-- once the backoff has passed (raising the delivery count = the attempt). Its
-- first delivery time goes to the leases zset first (back-dating hides it).
-- KEYS[1] task stream, KEYS[2] err key, KEYS[3] stats, KEYS[4] leases zset.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id, ARGV[4] idle ms to set,
-- ARGV[5] error payload, ARGV[6] error TTL (s). Returns 1, or -1 lease lost.
-- Protocol 1.1 adds KEYS[5] the task's history hash, KEYS[6] the spec's usage hash,
-- KEYS[7] its usage:workers hash; ARGV[7] the attempt number, ARGV[8] the attempt's
-- JSON record, ARGV[9] its usage (msgpack, as complete.lua; '' = none) and ARGV[10]
-- the task's shard. The record is kept once per attempt (HSETNX): a call replayed
-- after a lost reply neither records nor counts the attempt twice.
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

local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
if not p[1] or p[1][2] ~= ARGV[2] then return -1 end
local first = true
if KEYS[5] then
  first = redis.call('HSETNX', KEYS[5], ARGV[7], ARGV[8]) == 1
  redis.call('EXPIRE', KEYS[5], ARGV[6])
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[4], 'NX', now - tonumber(p[1][3]), ARGV[3])
redis.call('SET', KEYS[2], ARGV[5], 'EX', ARGV[6])
redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')
if first then
  redis.call('HINCRBY', KEYS[3], 'retried', 1)
  if KEYS[7] and ARGV[9] ~= '' then
    local acc = {}
    tally(acc, cmsgpack.unpack(ARGV[9]), ARGV[10])
    store(KEYS[6], KEYS[7], acc, ARGV[2])
  end
end
return 1
