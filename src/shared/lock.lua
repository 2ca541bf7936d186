-- RedisTokenStore::try_lock: takes the refresh lock if nobody holds it, with a new fencing token.
-- KEYS[1] lock (a string: the holder's fence), KEYS[2] fence (counter, never expires).
-- ARGV[1] the lock's time to live (ms).
-- Answers {1, fence} when taken, or {0, the holder's time left (ms)}.
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {0, redis.call('PTTL', KEYS[1])}
end
local fence = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], fence, 'PX', ARGV[1])
return {1, fence}
