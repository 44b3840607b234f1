-- Connections open down one lane (an upstream relay, or a site from one egress address)
-- across every mailgate process: a sorted set of
-- holders scored by when their hold runs out (milliseconds, Redis's clock). A holder that
-- died stops renewing, and its slot frees itself.
--
-- KEYS[1]  the lane's set
-- ARGV[1]  `acquire`, `renew`, `release`, or `count` (how many hold one now)
-- ARGV[2]  the holder (process and connection)
-- ARGV[3]  most holders at once
-- ARGV[4]  how long a hold lasts unless renewed (milliseconds)
--
-- Returns 1 when the holder holds a slot afterwards (0 for `release`).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local max = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if ARGV[1] == 'count' then
  return redis.call('ZCARD', KEYS[1])
end
if ARGV[1] == 'release' then
  redis.call('ZREM', KEYS[1], ARGV[2])
  return 0
end
local held = redis.call('ZSCORE', KEYS[1], ARGV[2])
if held or redis.call('ZCARD', KEYS[1]) < max then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[2])
  redis.call('PEXPIRE', KEYS[1], ttl + 1000)
  return 1
end
return 0
