-- One rate-limit decision, atomic: GCRA for the bucket plus the per-period quota.
-- The clock is Redis's own TIME, so mailgate processes need no synchronised clocks.
--
-- KEYS[1]  the bucket: a hash {tat, interval}: its theoretical arrival time (microseconds
--          since the epoch) and the interval it was computed with
-- KEYS[2]  the quota: a hash {period, used}
-- ARGV[1]  emission interval: microseconds per unit at the sustained rate
-- ARGV[2]  burst: units the full bucket holds
-- ARGV[3]  units this call charges
-- ARGV[4]  quota per period (0: no quota)
-- ARGV[5]  quota period in seconds, aligned to the epoch (86400: UTC days)
--
-- Returns {verdict, remaining, reset_us, retry_us, quota_used, quota_reset_s}.
-- verdict 0: allowed and charged; 1: rate limited; 2: quota used up. Refusals change nothing.
local time = redis.call('TIME')
local now_s = tonumber(time[1])
local now = now_s * 1000000 + tonumber(time[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local units = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local period_len = tonumber(ARGV[5])

local period = math.floor(now_s / period_len)
local quota_reset = (period + 1) * period_len - now_s
local used = 0
if quota > 0 then
  local q = redis.call('HMGET', KEYS[2], 'period', 'used')
  if tonumber(q[1]) == period then
    used = tonumber(q[2]) or 0
  end
end

-- A missing or past TAT means a full bucket.
local bucket = redis.call('HMGET', KEYS[1], 'tat', 'interval')
local tat = tonumber(bucket[1]) or now
local old_interval = tonumber(bucket[2]) or interval
if tat < now then
  tat = now
end
local tolerance = interval * burst
if old_interval ~= interval then
  -- The key's rate changed: the units it used are still owed, repaid at the new rate.
  tat = now + (tat - now) / old_interval * interval
end
if tat > now + tolerance then
  -- A smaller burst than before: the bucket is empty, not in debt.
  tat = now + tolerance
end
local function remaining_at(t)
  return math.floor((tolerance - (t - now)) / interval)
end

if quota > 0 and used + units > quota then
  return {2, remaining_at(tat), tat - now, 0, used, quota_reset}
end

local new_tat = tat + interval * units
if new_tat - now > tolerance then
  return {1, remaining_at(tat), tat - now, new_tat - now - tolerance, used, quota_reset}
end

-- Once the TAT has passed, the key says nothing a missing key would not: let it expire.
-- '%.0f' because tostring() would round a 16-digit number.
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', new_tat), 'interval', interval)
redis.call('PEXPIRE', KEYS[1], math.ceil((new_tat - now) / 1000) + 1000)
if quota > 0 then
  used = used + units
  redis.call('HSET', KEYS[2], 'period', period, 'used', used)
  redis.call('EXPIRE', KEYS[2], quota_reset + 60)
end
return {0, remaining_at(new_tat), new_tat - now, 0, used, quota_reset}
