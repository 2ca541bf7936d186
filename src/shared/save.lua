-- RedisTokenStore::save_if_current: stores a new pair only if the lock still holds our fence
-- AND the stored pair is still the one we refreshed from (its version, and the SHA-1 of its
-- refresh token, so a store emptied and refilled since cannot match by version alone).
-- KEYS[1] lock, KEYS[2] pair (a hash: version, pair = JSON, rt = SHA-1 of its refresh token).
-- ARGV: our fence, the expected version (0: nothing stored), the expected refresh token ('' for
-- none), the new pair's JSON, the new refresh token.
-- Answers {1, new version, ''} when stored; {2, version, JSON} (the current pair; 0 and '' when
-- none) when the stored pair changed; {0, 0, ''} when the lock is no longer ours.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  return {0, 0, ''}
end
local current = redis.call('HMGET', KEYS[2], 'version', 'pair', 'rt')
local version = tonumber(current[1]) or 0
local expected = tonumber(ARGV[2])
local same
if expected == 0 then
  same = current[1] == false
else
  same = version == expected and current[3] == redis.sha1hex(ARGV[3])
end
if not same then
  return {2, version, current[2] or ''}
end
redis.call('HSET', KEYS[2], 'version', version + 1, 'pair', ARGV[4], 'rt', redis.sha1hex(ARGV[5]))
return {1, version + 1, ''}
