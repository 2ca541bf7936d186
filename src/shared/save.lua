-- RedisTokenStore::save_if_current: stores a new pair only if the stored pair is still the one
-- we refreshed from (its version, and the SHA-1 of its refresh token, so a store emptied and
-- refilled since cannot match by version alone). The refresh lock is not consulted: refresh
-- tokens are single-use, so only the one process whose refresh spent the stored refresh token
-- can hold a pair refreshed from it, and it may store that pair even after its lock ran out (no
-- other process can have refreshed from the same pair and succeeded).
-- KEYS[1] pair (a hash: version, pair = JSON, rt = SHA-1 of its refresh token).
-- ARGV: the expected version (0: nothing stored), the expected refresh token ('' for none), the
-- new pair's JSON, the new refresh token.
-- Answers {1, new version, ''} when stored; {2, version, JSON} (the current pair; 0 and '' when
-- none) when the stored pair changed.
local current = redis.call('HMGET', KEYS[1], 'version', 'pair', 'rt')
local version = tonumber(current[1]) or 0
local expected = tonumber(ARGV[1])
local same
if expected == 0 then
  same = current[1] == false
else
  same = version == expected and current[3] == redis.sha1hex(ARGV[2])
end
if not same then
  return {2, version, current[2] or ''}
end
redis.call('HSET', KEYS[1], 'version', version + 1, 'pair', ARGV[3], 'rt', redis.sha1hex(ARGV[4]))
return {1, version + 1, ''}
