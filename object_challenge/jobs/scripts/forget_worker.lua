-- forget_worker.lua: delete a worker and end the leases it holds at once (their
-- jobs go back to the head of their queues, or fail at the attempt limit).
-- KEYS[1] worker status  KEYS[2] worker attributes hash  KEYS[3] worker-jobs set
-- ARGV[1] prefix  ARGV[2] worker id
-- returns JSON {"existed": bool, "released": [end_lease events]}
local existed = redis.call('DEL', KEYS[1], KEYS[2]) > 0
redis.call('HDEL', WORKER_MODULES, ARGV[2])
existed = (redis.call('ZREM', WORKERS, ARGV[2]) > 0) or existed
local released = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[3])) do
  local event = end_lease(id, 'worker deleted')
  if event then released[#released + 1] = event end
end
existed = (redis.call('DEL', KEYS[3]) > 0) or existed
return encode({existed = existed, released = released})
