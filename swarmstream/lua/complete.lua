-- Record findings and ack their tasks, atomically and idempotently (batch).
-- KEYS[1] task stream, KEYS[2] findings stream, KEYS[3] stats hash, then per item
-- its done key, followed by its err key when the item's has_err flag is 1.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] done TTL (s), ARGV[4] findings MAXLEN,
-- ARGV[5] msgpack array of items {entry id, task id, shard, status, body, has_err}.
-- Returns per item: 1 recorded, 0 duplicate (a finding already exists), -1 lease lost.
local tasks, group, consumer, ttl, maxlen = KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local items = cmsgpack.unpack(ARGV[5])
local out, acks, counts = {}, {}, {}
local k = 4
for i, item in ipairs(items) do
  local id, task_id, shard, status, body, has_err = item[1], item[2], item[3], item[4], item[5], item[6]
  local done = KEYS[k]
  local err = nil
  k = k + 1
  if has_err == 1 then err = KEYS[k]; k = k + 1 end
  local p = redis.call('XPENDING', tasks, group, id, id, 1)
  local owner = p[1] and p[1][2]
  if owner ~= consumer then
    -- Acked already (finding exists) or reclaimed by another worker: fenced.
    if redis.call('EXISTS', done) == 1 then out[i] = 0 else out[i] = -1 end
  else
    if redis.call('EXISTS', done) == 1 then
      out[i] = 0
    else
      local fid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
        'task_id', task_id, 'shard', shard, 'status', status, 'body', body)
      redis.call('SET', done, fid, 'EX', ttl)
      if err then redis.call('DEL', err) end
      counts[status] = (counts[status] or 0) + 1
      out[i] = 1
    end
    acks[#acks + 1] = id
  end
end
for i = 1, #acks, 1000 do
  redis.call('XACK', tasks, group, unpack(acks, i, math.min(i + 999, #acks)))
end
for status, n in pairs(counts) do redis.call('HINCRBY', KEYS[3], status, n) end
return out
