-- Renew the leases of entries this consumer still owns: re-claim them with
-- JUSTID, which resets their idle time without raising the delivery count.
-- Never takes an entry that another consumer has reclaimed.
-- KEYS[1] task stream. ARGV[1] group, ARGV[2] consumer, ARGV[3..] entry ids.
-- Returns the ids that are no longer this consumer's (lease lost).
local lost = {}
for i = 3, #ARGV do
  local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if p[1] and p[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
