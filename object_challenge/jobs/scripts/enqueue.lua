-- enqueue.lua: put a new job at the TAIL of its queue, atomically with its live state.
-- KEYS[1] queue list (oc:jobs:queue:<name>)   KEYS[2] job hash (oc:jobs:job:<id>)
-- KEYS[3] queue names set (oc:jobs:queues)
-- ARGV[1] prefix  ARGV[2] job id  ARGV[3] queue name  ARGV[4] max attempts
-- ARGV[5] deliveries it already had (0 for a new job; `jobs recover` after a Redis loss)
-- returns the queue length after the push; 0 if the id already exists (nothing done)
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
redis.call('HSET', KEYS[2], 'queue', ARGV[3], 'state', 'queued', 'attempt', ARGV[5] or 0,
           'max_attempts', ARGV[4], 'worker', '', 'lease_until', '')
redis.call('SADD', KEYS[3], ARGV[3])
return redis.call('RPUSH', KEYS[1], ARGV[2])
