-- Record findings and ack their tasks, atomically and idempotently (batch).
-- KEYS[1] task stream, KEYS[2] findings stream, KEYS[3] stats hash,
-- then per item i: KEYS[3+2i-1] done key, KEYS[3+2i] err key.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] done TTL (s), ARGV[4] findings MAXLEN,
-- then per item: entry id, task id, shard, status, body.
-- Returns per item: 1 recorded, 0 duplicate (a finding already exists), -1 lease lost.
local group, consumer, ttl, maxlen = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local out = {}
local n = (#ARGV - 4) / 5
for i = 1, n do
  local a = 4 + (i - 1) * 5
  local id, task_id, shard, status, body = ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5]
  local done, err = KEYS[3 + 2 * i - 1], KEYS[3 + 2 * i]
  local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
  local owner = p[1] and p[1][2]
  if owner ~= consumer then
    -- Acked already (finding exists) or reclaimed by another worker: fenced.
    if redis.call('EXISTS', done) == 1 then out[i] = 0 else out[i] = -1 end
  elseif redis.call('EXISTS', done) == 1 then
    redis.call('XACK', KEYS[1], group, id)
    out[i] = 0
  else
    local fid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', maxlen, '*',
      'task_id', task_id, 'shard', shard, 'status', status, 'body', body)
    redis.call('SET', done, fid, 'EX', ttl)
    redis.call('DEL', err)
    redis.call('XACK', KEYS[1], group, id)
    redis.call('HINCRBY', KEYS[3], status, 1)
    out[i] = 1
  end
end
return out
