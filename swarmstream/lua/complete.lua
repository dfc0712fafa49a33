-- Record findings and ack their tasks, atomically and idempotently (batch).
-- KEYS[1] task stream, KEYS[2] findings stream, KEYS[3] stats hash, KEYS[4] leases
-- zset (acked entries leave it), then the items' done and err keys (see below).
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] done TTL (s), ARGV[4] findings MAXLEN, then
-- the items in one of two forms:
--  * packed (what swarmstream sends): ARGV[5] is one msgpack array of items
--    {entry id, task id, shard, status, body, has_err, usage}; KEYS has per item its
--    done key, followed by its err key when has_err is 1, or its err and history keys
--    when has_err is 2 (protocol 1.1). usage (optional) is {model, input, output,
--    cache_read, cache_write, cost, cost_computed}, cost '' when unknown. After the
--    items' keys, KEYS may name the spec's usage and usage:workers hashes (1.1):
--    then each recorded item's usage is added to the totals, in this same step.
--  * flat (easy from redis-cli or any client): per item 5 values ARGV: entry id,
--    task id, shard, status, body; KEYS has per item its done key and its err key.
-- A task's history hash (attempts that did not end it) becomes the finding's
-- 'attempts' field, a JSON array, and is deleted.
-- Each finding entry names the task entry it answers and the consumer that wrote
-- it ('entry', 'worker'), so a call replayed after a lost reply answers 1 again
-- for what it recorded the first time.
-- Returns per item: 1 recorded, 0 duplicate (a finding already exists), -1 lease lost.
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

local tasks, group, consumer, ttl, maxlen = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local items = {}
local k = 5
if #ARGV == 5 then
  for i, it in ipairs(cmsgpack.unpack(ARGV[5])) do
    local err, hist = nil, nil
    if it[6] == 1 or it[6] == 2 then err = KEYS[k + 1] end
    if it[6] == 2 then hist = KEYS[k + 2] end
    items[i] = {it[1], it[2], it[3], it[4], it[5], KEYS[k], err, hist, it[7]}
    k = k + 1 + (err and 1 or 0) + (hist and 1 or 0)
  end
else
  for a = 5, #ARGV, 5 do
    items[#items + 1] = {ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], KEYS[k], KEYS[k + 1]}
    k = k + 2
  end
end
if #items == 0 then return {} end
local usage_key, workers_key = KEYS[k], KEYS[k + 1]
local acc = {}

-- Stream ids compare as two decimal numbers; compare them as digit strings so that
-- no precision is lost in Lua's doubles.
local function num_less(a, b)
  if #a ~= #b then return #a < #b end
  return a < b
end
local function id_less(a, b)
  local ams, aseq = string.match(a, '^(%d+)-(%d+)$')
  local bms, bseq = string.match(b, '^(%d+)-(%d+)$')
  if ams ~= bms then return num_less(ams, bms) end
  return num_less(aseq, bseq)
end

-- Fencing: which of the items does this consumer own? One XPENDING over the batch's
-- id range, filtered by consumer; a reply at the limit may be cut short (and ids
-- not in full ms-seq form are not ranged), so ids missing from it are then
-- checked one by one.
local mine, cut = {}, false
for _, item in ipairs(items) do
  if not string.match(item[1], '^%d+-%d+$') then cut = true end
end
if not cut then
  local lo, hi = items[1][1], items[1][1]
  for i = 2, #items do
    local id = items[i][1]
    if id_less(id, lo) then lo = id end
    if id_less(hi, id) then hi = id end
  end
  local limit = #items * 2 + 64
  local range = redis.call('XPENDING', tasks, group, lo, hi, limit, consumer)
  for _, p in ipairs(range) do mine[p[1]] = true end
  cut = #range >= limit
end

local function owned(id)
  if mine[id] then return true end
  if not cut then return false end
  local p = redis.call('XPENDING', tasks, group, id, id, 1)
  return p[1] ~= nil and p[1][2] == consumer
end

local out, acks, counts = {}, {}, {}
for i, item in ipairs(items) do
  local id, task_id, shard, status, body, done, err, hist, u =
    item[1], item[2], item[3], item[4], item[5], item[6], item[7], item[8], item[9]
  if not owned(id) then
    -- Acked already (finding exists) or reclaimed by another worker: fenced. A
    -- finding written for this very entry by this very consumer means this call
    -- replays one whose reply was lost: recorded, as the first call said.
    local fid = redis.call('GET', done)
    if not fid then
      out[i] = -1
    else
      local f = redis.call('XRANGE', KEYS[2], fid, fid)
      out[i] = 0
      if f[1] then
        local mine = 0
        for j = 1, #f[1][2], 2 do
          local name, value = f[1][2][j], f[1][2][j + 1]
          if (name == 'entry' and value == id) or (name == 'worker' and value == consumer) then
            mine = mine + 1
          end
        end
        if mine == 2 then out[i] = 1 end
      end
    end
  else
    -- Add the finding, then claim the done marker with SET NX; if the task had a
    -- finding already (a duplicate), take the new entry back out. Nobody can see
    -- it in between: the script runs atomically. One call fewer than EXISTS first.
    local past = hist and history(hist)
    local fid
    if past then
      fid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
        'task_id', task_id, 'shard', shard, 'status', status,
        'entry', id, 'worker', consumer, 'body', body, 'attempts', past)
    else
      fid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
        'task_id', task_id, 'shard', shard, 'status', status,
        'entry', id, 'worker', consumer, 'body', body)
    end
    if redis.call('SET', done, fid, 'NX', 'EX', ttl) then
      if err then redis.call('DEL', err) end
      if past then redis.call('DEL', hist) end
      if workers_key and type(u) == 'table' then tally(acc, u, shard) end
      counts[status] = (counts[status] or 0) + 1
      out[i] = 1
    else
      redis.call('XDEL', KEYS[2], fid)
      out[i] = 0
    end
    acks[#acks + 1] = id
  end
end
local leased = redis.call('EXISTS', KEYS[4]) == 1
for i = 1, #acks, 1000 do
  local j = math.min(i + 999, #acks)
  redis.call('XACK', tasks, group, unpack(acks, i, j))
  if leased then redis.call('ZREM', KEYS[4], unpack(acks, i, j)) end
end
for status, n in pairs(counts) do redis.call('HINCRBY', KEYS[3], status, n) end
if workers_key and next(acc) then store(usage_key, workers_key, acc, consumer) end
return out
