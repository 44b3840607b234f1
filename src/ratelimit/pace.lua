-- Pacing of one lane (an upstream relay, or a destination site from one egress address),
-- shared by every mailgate process: a GCRA schedule of send times plus the back-off its
-- throttling replies asked for. Redis's own clock (TIME), so the
-- processes need no synchronised clocks. Must agree with `pace.rs` (`PaceState`).
--
-- KEYS[1]  the lane's hash {tat, pause, backoff, slow, throttles}, times in microseconds
--          since the epoch
-- ARGV[1]  `reserve`, `throttle`, or `peek` (changes nothing)
-- reserve: ARGV[2] interval (microseconds per message, 0: no rate), ARGV[3] burst,
--          ARGV[4] horizon (the longest wait that is reserved rather than refused)
-- throttle: ARGV[2] base back-off, ARGV[3] longest back-off, ARGV[4] how long the lane
--          stays slowed afterwards (all microseconds)
--
-- Returns {wait, reserved, pause, backoff, slow, throttles}: for `reserve`, how long until
-- the message may go and whether that moment is now the caller's (1) or was refused (0);
-- for `throttle`, wait is the time left in the pause.
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
local s = redis.call('HMGET', KEYS[1], 'tat', 'pause', 'backoff', 'slow', 'throttles')
local tat = tonumber(s[1]) or now
local pause = tonumber(s[2]) or 0
local backoff = tonumber(s[3]) or 0
local slow = tonumber(s[4]) or 0
local throttles = tonumber(s[5]) or 0
local op = ARGV[1]
local a = tonumber(ARGV[2])
local b = tonumber(ARGV[3])
local c = tonumber(ARGV[4])
local wait = 0
local reserved = 0

if op == 'reserve' then
  local interval = a
  local burst = b
  if now < slow then
    -- Slowed after a throttling reply: half the rate, no burst.
    interval = interval * 2
    burst = 1
  end
  if tat < now then tat = now end
  local start = math.max(now, pause, tat - interval * (burst - 1))
  wait = start - now
  if wait <= c then
    reserved = 1
    tat = math.max(tat, start) + interval
  end
elseif op == 'throttle' then
  throttles = throttles + 1
  if now >= pause then
    -- Throttled again soon after the last pause: twice as long. Replies from sends that
    -- were already under way when the pause began do not escalate it.
    if backoff > 0 and now < pause + backoff * 2 then
      backoff = math.min(backoff * 2, b)
    else
      backoff = a
    end
    pause = now + backoff
  end
  slow = math.max(slow, pause + c)
  wait = pause - now
elseif op == 'peek' then
  return {0, 0, pause, backoff, slow, throttles}
end

-- '%.0f' because tostring() would round a 16-digit number.
redis.call('HSET', KEYS[1], 'tat', string.format('%.0f', tat), 'pause', string.format('%.0f', pause),
  'backoff', string.format('%.0f', backoff), 'slow', string.format('%.0f', slow), 'throttles', throttles)
-- Kept while it says more than a missing key would, and then some (for the throttle count).
local last = math.max(tat, pause, slow)
redis.call('PEXPIRE', KEYS[1], math.ceil((last - now) / 1000) + 3600000)
return {wait, reserved, pause, backoff, slow, throttles}
