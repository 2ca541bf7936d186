-- The lease of a request in flight (RedisRateLimit's permit, every quarter period until its answer):
-- the request may still reach the server, so its place must not leave the window yet. Raises the
-- place's anchor to Redis's now (never lowers it) and keeps the places' key a period longer.
-- A place that is gone is put back at now (Redis lost its data while the request was in flight:
-- the window must still count it). If the holder dies, the lease stops and the place leaves the
-- window a period after the last extension.
-- KEYS[1] places; ARGV[1] the place (its token), ARGV[2] the period (µs). Answers now (µs since the epoch).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if redis.call('ZADD', KEYS[1], 'GT', 'CH', now, ARGV[1]) == 1 then
  local ms = math.ceil(tonumber(ARGV[2]) / 1000) + 1
  if redis.call('PTTL', KEYS[1]) < ms then
    redis.call('PEXPIRE', KEYS[1], ms)
  end
end
return now
