-- requeue.lua: the scheduler's tick: expired leases back onto their queues (or
-- `failed`), and workers whose heartbeats stopped off the workers index.
-- KEYS none (all from the prefix)
-- ARGV[1] prefix  ARGV[2] max leases to handle in one call
-- returns JSON {"expired": [end_lease events], "workers_expired": n}
local now = now_ms()
local events = requeue_expired(now, tonumber(ARGV[2]))
local gone = redis.call('ZREMRANGEBYSCORE', WORKERS, '-inf', now)
return encode({expired = events, workers_expired = gone})
