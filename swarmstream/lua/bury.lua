-- Dead-letter one entry: write the dead letter, the task's final finding (if the
-- task id is known and it has none yet), and ack, atomically. Fenced.
-- KEYS[1] task stream, KEYS[2] findings stream, KEYS[3] dead stream, KEYS[4] stats,
-- KEYS[5] done key, KEYS[6] err key (both may be placeholders when no task id),
-- KEYS[7] leases zset.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] entry id, ARGV[4] done TTL,
-- ARGV[5] findings MAXLEN, ARGV[6] dead MAXLEN, ARGV[7] task id ('' = none),
-- ARGV[8] shard, ARGV[9] status, ARGV[10] finding body, ARGV[11..] dead fields.
-- Returns 1 buried, -1 lease lost.
local group, consumer, id = ARGV[1], ARGV[2], ARGV[3]
local p = redis.call('XPENDING', KEYS[1], group, id, id, 1)
if not p[1] or p[1][2] ~= consumer then return -1 end
local fields = {}
for i = 11, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', unpack(fields))
if ARGV[7] ~= '' and redis.call('EXISTS', KEYS[5]) == 0 then
  local fid = redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*',
    'task_id', ARGV[7], 'shard', ARGV[8], 'status', ARGV[9],
    'entry', id, 'worker', consumer, 'body', ARGV[10])
  redis.call('SET', KEYS[5], fid, 'EX', ARGV[4])
  redis.call('HINCRBY', KEYS[4], ARGV[9], 1)
end
if ARGV[7] ~= '' then redis.call('DEL', KEYS[6]) end
redis.call('XACK', KEYS[1], group, id)
redis.call('ZREM', KEYS[7], id)
redis.call('HINCRBY', KEYS[4], 'buried', 1)
return 1
