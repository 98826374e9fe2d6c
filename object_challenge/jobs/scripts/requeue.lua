-- requeue.lua: the scheduler's tick: expired leases back onto their queues (or
-- `failed` / `cancelled`), due delayed jobs into line, and workers whose heartbeats
-- stopped off the workers index.
-- KEYS none (all from the prefix)
-- ARGV[1] prefix  ARGV[2] max leases (and delayed jobs per queue) to handle in one call
-- ARGV[3] queue names set
-- returns JSON {"expired": [end_lease events], "workers_expired": n, "promoted": n}
local now = now_ms()
local limit = tonumber(ARGV[2])
local events = requeue_expired(now, limit)
local promoted = 0
for _, name in ipairs(redis.call('SMEMBERS', ARGV[3])) do
  promoted = promoted + promote_due(name, now, limit)
end
local gone = redis.call('ZREMRANGEBYSCORE', WORKERS, '-inf', now)
return encode({expired = events, workers_expired = gone, promoted = promoted})
