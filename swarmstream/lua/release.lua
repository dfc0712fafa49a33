-- Give back entries this consumer owns but will not finish (drain, shutdown):
-- make them reclaimable at once and take back the delivery they used, so the
-- next worker sees the same attempt number.
-- KEYS[1] task stream. ARGV[1] group, ARGV[2] consumer, ARGV[3] idle ms,
-- ARGV[4..] entry ids. Returns how many were released.
local n = 0
for i = 4, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    local count = math.max(0, tonumber(p[1][4]) - 1)
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i],
      'IDLE', ARGV[3], 'RETRYCOUNT', count, 'JUSTID')
    n = n + 1
  end
end
return n
