-- One step of RedisRateLimit::acquire, atomic in Redis, on Redis's clock.
--
-- KEYS[1] places: ZSET, member = the granted waiter's token (unique to the grant: place ids start
--                 again when Redis loses its data, so finish.lua and extend_place.lua, which put a
--                 lost place back, must not meet a new one), score = anchor (µs since the epoch): the latest time
--                 the server can have counted the request: its grant + margin while it has no
--                 answer, then its answer (finish.lua sets it, lower or higher). A place leaves
--                 the window at anchor + period.
-- KEYS[2] queue:  ZSET of waiters, member = the waiter's token (chosen by the client, so it can
--                 leave even if it never saw an answer), score = its ticket: rank = arrival order.
-- KEYS[3] alive:  ZSET of the same tokens, score = the waiter's liveness deadline (µs).
-- KEYS[4] seq:    counter for place ids and tickets. It never expires: its absence means the
--                 limit has no history (a new name, or a Redis that lost its data).
-- KEYS[5] hold:   set for a period and the margin when the history is gone: no grant until it
--                 expires, since requests this window no longer holds may have been sent.
-- ARGV: max, period (µs), margin (µs), the waiter's token, its ticket (0: none yet),
--       liveness (µs).
--
-- Answers {1, place id, now} when granted, or {0, ticket, wait (µs)} to ask again after the
-- wait (with that ticket, which keeps the caller's turn).
--
-- Numbers stay numbers: redis.call formats them exactly, tostring() and `..` would not.
local places, queue, alive, seq, hold = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local max = tonumber(ARGV[1])
local period = tonumber(ARGV[2])
local margin = tonumber(ARGV[3])
local token = ARGV[4]
local ticket = tonumber(ARGV[5])
local liveness = tonumber(ARGV[6])

local time = redis.call('TIME')
local now = tonumber(time[1]) * 1000000 + tonumber(time[2])

-- Places that left the window: anchor + period <= now.
redis.call('ZREMRANGEBYSCORE', places, '-inf', now - period)
-- Waiters that stopped asking (crashed, or cancelled without saying so).
local dead = redis.call('ZRANGEBYSCORE', alive, '-inf', now, 'LIMIT', 0, 256)
if #dead > 0 then
  redis.call('ZREM', alive, unpack(dead))
  redis.call('ZREM', queue, unpack(dead))
end

-- No history: the window may be missing requests sent in the last period (Redis restarted
-- without its data while workers were sending). Treat it as full for a period and the margin.
if redis.call('EXISTS', seq) == 0 then
  redis.call('SET', seq, 0)
  redis.call('SET', hold, 1, 'PX', math.ceil((period + margin) / 1000) + 1)
end
local held = redis.call('PTTL', hold)

local used = redis.call('ZCARD', places)
local free = max - used
if held > 0 then
  free = 0
end

-- Keys vanish when idle: places after their last anchor + period, tickets after their
-- deadline. The counter stays (see KEYS[4]).
local keep_ms = math.ceil((period + margin) / 1000) + 1
local live_ms = math.ceil(liveness / 1000) + 1

-- Sets a key's time to live to at least `ms` (never shortens it: a process with a longer margin
-- may have set a longer one).
local function keep(key, ms)
  local left = redis.call('PTTL', key)
  if left < ms then
    redis.call('PEXPIRE', key, ms)
  end
end

local rank
local queued = redis.call('ZSCORE', queue, token)
if not queued and redis.call('ZCARD', queue) == 0 and free > 0 then
  -- Nobody is waiting: no ticket needed.
  rank = 0
else
  if queued then
    ticket = tonumber(queued)
  else
    if ticket == 0 then
      ticket = redis.call('INCR', seq)
    end
    -- A new waiter, or one purged while it was slow to ask again: it keeps its ticket.
    redis.call('ZADD', queue, ticket, token)
  end
  redis.call('ZADD', alive, now + liveness, token)
  keep(queue, live_ms)
  keep(alive, live_ms)
  rank = redis.call('ZRANK', queue, token)
end

if rank < free then
  if queued or ticket ~= 0 then
    redis.call('ZREM', queue, token)
    redis.call('ZREM', alive, token)
  end
  local id = redis.call('INCR', seq)
  redis.call('ZADD', places, now + margin, token)
  keep(places, keep_ms)
  return {1, id, now}
end

-- Turn `rank` needs rank - free + 1 more places to leave: the (rank - free)-th earliest.
local wait = period
local k = rank - free
if k < used then
  local place = redis.call('ZRANGE', places, k, k, 'WITHSCORES')
  wait = tonumber(place[2]) + period - now
end
if held > 0 then
  wait = held * 1000
end
if wait < 1 then
  wait = 1
end
return {0, ticket, wait}
