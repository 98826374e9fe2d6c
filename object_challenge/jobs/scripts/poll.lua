-- poll.lua: lease the oldest job of a queue that the worker can run (never to two at once).
-- First requeues a few expired leases and moves due delayed jobs into line, so that
-- polls alone keep the queue moving.
-- KEYS[1] queue list  KEYS[2] queue attributes hash  KEYS[3] worker attributes hash
-- ARGV[1] prefix  ARGV[2] worker id ('' = unnamed: the job holds the lease until a
-- heartbeat names it)  ARGV[3] lease ms  ARGV[4] max expired leases to requeue first
-- ARGV[5] the worker's modules "a,b,c" ('' = any job)  ARGV[6] how many waiting jobs a
-- poll with modules looks at, from the head (past them it answers as if empty)
-- ARGV[7] queue name  ARGV[8] '1': the job's answer template (`tpl`; the gateway)
-- instead of its document (`doc`; the service)
-- returns JSON {"job": {id, attempt, worker, lease_until, doc, history: [JSON events]} | absent,
--               "refused": "queue_disabled" | "worker_disabled" | absent,
--               "skipped": n, "expired": [end_lease events]}
local worker, lease_ms, modules, scan = ARGV[2], tonumber(ARGV[3]), ARGV[5], tonumber(ARGV[6])
local queue = ARGV[7]
local now = now_ms()
local result = {expired = requeue_expired(now, tonumber(ARGV[4])), skipped = 0}
promote_due(queue, now, 100)
if worker ~= '' then
  if modules ~= '' then redis.call('HSET', WORKER_MODULES, worker, modules)
  else redis.call('HDEL', WORKER_MODULES, worker) end
end
if redis.call('HGET', KEYS[2], 'disabled') == 'true' then
  result.refused = 'queue_disabled'
  return encode(result)
end
if worker ~= '' and redis.call('HGET', KEYS[3], 'disabled') == 'true' then
  result.refused = 'worker_disabled'
  return encode(result)
end

local function lease(id, jk, job_modules)
  local attempt = redis.call('HINCRBY', jk, 'attempt', 1)
  redis.call('HSET', jk, 'state', 'running', 'worker', worker, 'leased_at', now)
  local deadline = extend_lease(id, worker, now, lease_ms)
  if worker ~= '' then redis.call('SADD', worker_jobs_key(worker), id) end
  count_waiting(queue, job_modules, -1)
  add_event(id, {event = 'leased', attempt = attempt, worker_id = or_null(worker)})
  result.job = {id = id, attempt = attempt, worker = worker, lease_until = deadline,
                history = redis.call('LRANGE', history_key(id), 0, -1)}
  if ARGV[8] == '1' then result.job.tpl = redis.call('HGET', jk, 'tpl')
  else result.job.doc = redis.call('HGET', jk, 'doc') end
end

if modules == '' then
  while true do
    local id = redis.call('LPOP', KEYS[1])
    if not id then break end
    local jk = job_key(id)
    local f = redis.call('HMGET', jk, 'state', 'modules')
    -- ids of deleted jobs may linger in the list; skip them
    if f[1] == 'queued' then
      lease(id, jk, f[2])
      break
    end
  end
  return encode(result)
end

local can = {}
for m in string.gmatch(modules, '[^,]+') do can[m] = true end
local function fits(job_modules)
  for m in string.gmatch(job_modules or '', '[^,]+') do
    if not can[m] then return false end
  end
  return true
end
for _, id in ipairs(redis.call('LRANGE', KEYS[1], 0, scan - 1)) do
  local jk = job_key(id)
  local f = redis.call('HMGET', jk, 'state', 'modules')
  if f[1] ~= 'queued' then
    redis.call('LREM', KEYS[1], 1, id)  -- a lingering id of a deleted job
  elseif fits(f[2]) then
    redis.call('LREM', KEYS[1], 1, id)
    lease(id, jk, f[2])
    break
  else
    result.skipped = result.skipped + 1
  end
end
return encode(result)
