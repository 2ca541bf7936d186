-- SharedPermit::finish: the answer has come, so the server has counted the request by now.
-- Lowers the place's anchor to Redis's now (never raises it; a place already gone stays gone).
-- KEYS[1] places; ARGV[1] the place id. Answers now (µs since the epoch).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
redis.call('ZADD', KEYS[1], 'XX', 'LT', now, ARGV[1])
return now
