-- Give back entries this consumer owns but will not finish (drain, shutdown):
-- make them reclaimable at once and take back the delivery they used, so the
-- next worker sees the same attempt number. An entry whose handler had started
-- counts its releases (KEYS rel:<entry id>); once it has been released `limit`
-- times, it is not released again but reported as exhausted, and the caller
-- dead-letters it: a task that never finishes cannot live forever by being
-- released at every shutdown.
-- KEYS[1] task stream, KEYS[2] leases zset, KEYS[2+i] rel:<id> of the i-th entry.
-- ARGV[1] group, ARGV[2] consumer, ARGV[3] idle ms (= claim_idle), ARGV[4] TTL s
-- of the release counters, then per entry: ARGV[3+2i] id, ARGV[4+2i] limit (its
-- max_attempts; 0 = its handler never started: not counted).
-- Protocol 1.2: a last KEYS element, after the rel: keys, is the spec's due set;
-- each released id goes there too, so any worker's reclaim.lua takes it at once.
-- Returns per entry: 1 released, 0 not this consumer's, -n exhausted after n releases.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
local k = 3
local due = KEYS[3 + (#ARGV - 4) / 2]
for i = 5, #ARGV, 2 do
  local id, limit, rel = ARGV[i], tonumber(ARGV[i + 1]), KEYS[k]
  k = k + 1
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if not p[1] or p[1][2] ~= ARGV[2] then
    out[#out + 1] = 0
  else
    local n = 0
    if limit > 0 then n = tonumber(redis.call('GET', rel) or '0') end
    if limit > 0 and n >= limit then
      out[#out + 1] = -n
    else
      if limit > 0 then
        redis.call('SET', rel, n + 1, 'EX', ARGV[4])
        redis.call('ZADD', KEYS[2], 'NX', now - tonumber(p[1][3]), id)
      end
      local count = math.max(0, tonumber(p[1][4]) - 1)
      redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id,
        'IDLE', ARGV[3], 'RETRYCOUNT', count, 'JUSTID')
      if due then
        redis.call('SADD', due, id)
        redis.call('PEXPIRE', due, ARGV[3])
      end
      out[#out + 1] = 1
    end
  end
end
return out
