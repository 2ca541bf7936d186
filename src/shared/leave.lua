-- A waiter gave up (its acquire was cancelled or failed): its token leaves the queue, so the
-- waiters behind it need not wait for its liveness deadline.
-- KEYS[1] queue, KEYS[2] alive; ARGV[1] the waiter's token.
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 0
