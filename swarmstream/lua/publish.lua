-- Publish the swarm's protocol record once: the protocol version, the SHA1 of each
-- script and the settings every worker must share. The first writer wins; later
-- callers get what is there and compare.
-- KEYS[1] protocol hash. ARGV: field, value, ... (the caller's record).
-- Returns {1} if this call published it, else {0, field, value, ...} (HGETALL).
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('HSET', KEYS[1], unpack(ARGV))
  return {1}
end
local out = {0}
for _, v in ipairs(redis.call('HGETALL', KEYS[1])) do out[#out + 1] = v end
return out
