-- lib.lua: helpers that queue.py prepends to every job script; not a script by itself.
-- ARGV[1] of every script is the key prefix ("oc:jobs:", keys.PREFIX); per-job and
-- per-worker keys are built from it here exactly as keys.py builds them.
-- Single Redis node only: scripts touch keys derived from ids (not cluster-safe).
local P = ARGV[1]
local LEASES = P .. 'leases'
local FINISHED = P .. 'finished'
local WORKERS = P .. 'workers'

local function job_key(id) return P .. 'job:' .. id end
local function queue_key(name) return P .. 'queue:' .. name end
local function worker_jobs_key(worker) return P .. 'worker-jobs:' .. worker end

-- milliseconds on the Redis clock, so that every service process agrees on "now"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- cjson encodes an empty table as {}; the Python side reads {} and [] alike
local function encode(value) return cjson.encode(value) end

-- End a running job's lease: back to the HEAD of its queue, or `failed` once it has
-- had max_attempts deliveries. Returns the event for Python's record, or nil when
-- the job is not running (already finished, deleted, requeued).
local function end_lease(id, reason)
  local jk = job_key(id)
  redis.call('ZREM', LEASES, id)
  local f = redis.call('HMGET', jk, 'state', 'attempt', 'max_attempts', 'queue', 'worker')
  if f[1] ~= 'running' then return nil end
  local attempt, max_attempts = tonumber(f[2]) or 0, tonumber(f[3]) or 1
  local queue, worker = f[4], f[5] or ''
  if worker ~= '' then redis.call('SREM', worker_jobs_key(worker), id) end
  local event = {id = id, attempt = attempt, worker = worker, queue = queue, reason = reason}
  if attempt >= max_attempts then
    redis.call('HSET', jk, 'state', 'failed', 'lease_until', '', 'finished_at', now_ms(),
               'reason', reason .. ' after ' .. attempt .. ' of ' .. max_attempts .. ' attempts')
    redis.call('SADD', FINISHED, id)
    event.outcome = 'failed'
  else
    redis.call('HSET', jk, 'state', 'queued', 'worker', '', 'lease_until', '')
    redis.call('LPUSH', queue_key(queue), id)
    event.outcome = 'requeued'
  end
  return event
end

-- Requeue (or fail) at most `limit` jobs whose lease deadline has passed. Pushed
-- latest-expired first, so that the job that expired first ends up at the head.
local function requeue_expired(now, limit)
  local events = {}
  local ids = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, limit)
  for i = #ids, 1, -1 do
    local event = end_lease(ids[i], 'lease expired')
    if event then events[#events + 1] = event end
  end
  return events
end

-- Give a running job a fresh lease held by `worker`.
local function extend_lease(id, worker, now, lease_ms)
  local deadline = now + lease_ms
  redis.call('HSET', job_key(id), 'lease_until', deadline)
  redis.call('ZADD', LEASES, deadline, id)
  return deadline
end
