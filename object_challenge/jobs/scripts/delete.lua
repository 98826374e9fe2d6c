-- delete.lua: forget a job in Redis whatever its state (its queue slot, lease, hash).
-- KEYS[1] job hash
-- ARGV[1] prefix  ARGV[2] job id
-- returns the state it had, or false when Redis did not know it
local id = ARGV[2]
local f = redis.call('HMGET', KEYS[1], 'state', 'queue', 'worker', 'modules')
if not f[1] then return false end
if f[1] == 'queued' then
  redis.call('LREM', queue_key(f[2]), 0, id)
  redis.call('ZREM', delayed_key(f[2]), id)
  count_waiting(f[2], f[4], -1)
end
redis.call('ZREM', LEASES, id)
if f[3] and f[3] ~= '' then redis.call('SREM', worker_jobs_key(f[3]), id) end
drop_job(id)
return f[1]
