-- RedisTokenStore::release: deletes the lock only if it still holds our fence (it may have
-- expired and been taken by another process since).
-- KEYS[1] lock; ARGV[1] our fence. Answers 1 when released, 0 when it was no longer ours.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
