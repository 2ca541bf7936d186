-- SharedPermit::finish: the answer has come, so the server has counted the request by now.
-- Sets the place's anchor to Redis's now, lowering it (an answer within the margin) or raising it
-- (an answer after the margin: the request may have reached the server after grant + margin, so
-- the margin alone would let the place leave the window while the server still counts it).
-- A place that is gone is put back (Redis lost its data while the request was in flight: the
-- server counted it, the window no longer knew; or its lease failed, and then this only lowers
-- the rate). The places' key lives at least one period more, so it never expires before the
-- place leaves the window.
-- KEYS[1] places; ARGV[1] the place (its token), ARGV[2] the period (µs). Answers now (µs since the epoch).
local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])
if redis.call('ZADD', KEYS[1], 'CH', now, ARGV[1]) == 1 then
  local ms = math.ceil(tonumber(ARGV[2]) / 1000) + 1
  if redis.call('PTTL', KEYS[1]) < ms then
    redis.call('PEXPIRE', KEYS[1], ms)
  end
end
return now
