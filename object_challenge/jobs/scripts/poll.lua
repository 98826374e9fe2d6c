-- poll.lua: lease the job at the HEAD of a queue to a worker (never to two at once).
-- First requeues a few expired leases, so that polls alone keep the queue moving.
-- KEYS[1] queue list  KEYS[2] queue attributes hash  KEYS[3] worker attributes hash
-- ARGV[1] prefix  ARGV[2] worker id ('' = unnamed: the job holds the lease until a
-- heartbeat names it)  ARGV[3] lease ms  ARGV[4] max expired leases to requeue first
-- returns JSON {"job": {id, attempt, worker, lease_until} | absent,
--               "refused": "queue_disabled" | "worker_disabled" | absent,
--               "expired": [end_lease events]}
local worker, lease_ms = ARGV[2], tonumber(ARGV[3])
local now = now_ms()
local result = {expired = requeue_expired(now, tonumber(ARGV[4]))}
if redis.call('HGET', KEYS[2], 'disabled') == 'true' then
  result.refused = 'queue_disabled'
  return encode(result)
end
if worker ~= '' and redis.call('HGET', KEYS[3], 'disabled') == 'true' then
  result.refused = 'worker_disabled'
  return encode(result)
end
while true do
  local id = redis.call('LPOP', KEYS[1])
  if not id then break end
  local jk = job_key(id)
  -- ids of deleted jobs may linger in the list; skip them
  if redis.call('HGET', jk, 'state') == 'queued' then
    local attempt = redis.call('HINCRBY', jk, 'attempt', 1)
    redis.call('HSET', jk, 'state', 'running', 'worker', worker, 'leased_at', now)
    local deadline = extend_lease(id, worker, now, lease_ms)
    if worker ~= '' then redis.call('SADD', worker_jobs_key(worker), id) end
    result.job = {id = id, attempt = attempt, worker = worker, lease_until = deadline}
    break
  end
end
return encode(result)
