-- RedisTokenStore::extend: gives the lock a new time to live only if it still holds our fence
-- (it may have run out, and been taken by another process, since: that lock stays as it is).
-- KEYS[1] lock; ARGV[1] our fence, ARGV[2] the new time to live (ms), counted from now.
-- Answers 1 when extended, 0 when the lock is no longer ours (nothing changed).
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
