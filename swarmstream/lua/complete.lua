-- Record findings and ack their tasks, atomically and idempotently (batch).
-- KEYS[1] task stream, KEYS[2] findings stream, KEYS[3] stats hash, KEYS[4] leases
-- zset (acked entries leave it), then the items' done and err keys (see below).
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] done TTL (s), ARGV[4] findings MAXLEN, then
-- the items in one of two forms:
--  * packed (what swarmstream sends): ARGV[5] is one msgpack array of items
--    {entry id, task id, shard, status, body, has_err}; KEYS has per item its done
--    key, followed by its err key only when has_err is 1;
--  * flat (easy from redis-cli or any client): per item 5 values ARGV: entry id,
--    task id, shard, status, body; KEYS has per item its done key and its err key.
-- Each finding entry names the task entry it answers and the consumer that wrote
-- it ('entry', 'worker'), so a call replayed after a lost reply answers 1 again
-- for what it recorded the first time.
-- Returns per item: 1 recorded, 0 duplicate (a finding already exists), -1 lease lost.
local tasks, group, consumer, ttl, maxlen = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local items = {}
if #ARGV == 5 then
  local k = 5
  for i, it in ipairs(cmsgpack.unpack(ARGV[5])) do
    local err = nil
    if it[6] == 1 then err = KEYS[k + 1] end
    items[i] = {it[1], it[2], it[3], it[4], it[5], KEYS[k], err}
    if err then k = k + 2 else k = k + 1 end
  end
else
  local k = 5
  for a = 5, #ARGV, 5 do
    items[#items + 1] = {ARGV[a], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], KEYS[k], KEYS[k + 1]}
    k = k + 2
  end
end
if #items == 0 then return {} end

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
  local id, task_id, shard, status, body, done, err =
    item[1], item[2], item[3], item[4], item[5], item[6], item[7]
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
    local fid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
      'task_id', task_id, 'shard', shard, 'status', status,
      'entry', id, 'worker', consumer, 'body', body)
    if redis.call('SET', done, fid, 'NX', 'EX', ttl) then
      if err then redis.call('DEL', err) end
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
return out
