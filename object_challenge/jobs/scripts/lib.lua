-- lib.lua: helpers that queue.py prepends to every job script; not a script by itself.
-- ARGV[1] of every script is the key prefix ("oc:jobs:", keys.PREFIX); per-job and
-- per-worker keys are built from it here exactly as keys.py builds them.
-- Single Redis node only: scripts touch keys derived from ids (not cluster-safe).
--
-- Redis is the source of truth of a live job: its hash holds the job's document (`doc`,
-- JSON) and live fields, its history list the events; every change adds the job to
-- DIRTY (its MongoDB record is behind) or, once final, to FINISHED. The recorder
-- (service.Jobs.record, run by the scheduler) writes them to MongoDB in batches.
local P = ARGV[1]
local LEASES = P .. 'leases'
local FINISHED = P .. 'finished'
local DIRTY = P .. 'dirty'
local WORKERS = P .. 'workers'
local WORKER_MODULES = P .. 'worker-modules'
local STATS = P .. 'stats'  -- counters for the metrics (keys.STATS)

local function job_key(id) return P .. 'job:' .. id end
local function history_key(id) return P .. 'history:' .. id end
local function queue_key(name) return P .. 'queue:' .. name end
local function worker_jobs_key(worker) return P .. 'worker-jobs:' .. worker end
local function delayed_key(name) return P .. 'delayed:' .. name end
local function modsets_key(name) return P .. 'queue-modules:' .. name end

-- milliseconds on the Redis clock, so that every service process agrees on "now"
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- cjson encodes an empty table as {}; the Python side reads {} and [] alike
local function encode(value) return cjson.encode(value) end

local function or_null(value)
  if value == nil or value == '' then return cjson.null end
  return value
end

-- Append an event to the job's history (`at`: ms, Python renders it as ISO) and mark
-- its record as behind.
local function add_event(id, event)
  event.at = now_ms()
  redis.call('RPUSH', history_key(id), encode(event))
  redis.call('SADD', DIRTY, id)
end

-- A job becomes (or stops being) a waiting job of `queue`: the per-queue count of
-- waiting jobs by module set (`stranded` in GET /queue reads it).
local function count_waiting(queue, modules, delta)
  local n = redis.call('HINCRBY', modsets_key(queue), modules or '', delta)
  if n <= 0 then redis.call('HDEL', modsets_key(queue), modules or '') end
end

-- Put a queued job in line: at the head (requeue, release) or the tail (new job),
-- or in the queue's delayed set until `not_before` (ms), from which promote_due
-- moves it to the head or tail (the job hash's `place` field says which).
local function place(id, queue, head, not_before, now)
  local jk = job_key(id)
  if not_before and not_before > now then
    redis.call('HSET', jk, 'not_before', not_before, 'place', head and 'head' or 'tail')
    redis.call('ZADD', delayed_key(queue), not_before, id)
  elseif head then
    redis.call('HSET', jk, 'not_before', '')
    redis.call('LPUSH', queue_key(queue), id)
  else
    redis.call('HSET', jk, 'not_before', '')
    redis.call('RPUSH', queue_key(queue), id)
  end
end

-- Delayed jobs whose time has come into the line (at most `limit` of them).
local function promote_due(queue, now, limit)
  local dk = delayed_key(queue)
  local ids = redis.call('ZRANGEBYSCORE', dk, '-inf', now, 'LIMIT', 0, limit)
  for _, id in ipairs(ids) do
    redis.call('ZREM', dk, id)
    local f = redis.call('HMGET', job_key(id), 'state', 'place')
    if f[1] == 'queued' then place(id, queue, f[2] == 'head', nil, now) end
  end
  return #ids
end

-- A job reaches a final state in Redis; the recorder moves it to MongoDB.
local function finish(id, state, fields, event)
  local jk = job_key(id)
  redis.call('HSET', jk, 'state', state, 'lease_until', '', 'finished_at', now_ms())
  for k, v in pairs(fields or {}) do redis.call('HSET', jk, k, v) end
  event.event = state
  add_event(id, event)
  redis.call('SADD', FINISHED, id)
end

-- End a running job's lease: back to the HEAD of its queue (no sooner than
-- retry_after_ms from now), `failed` once it has had max_attempts deliveries,
-- `cancelled` when its cancel was asked. `name` is the history event of a requeue
-- ('requeued', 'released'). Returns the event, or nil when the job is not running.
local function end_lease(id, reason, retry_after_ms, name)
  local jk = job_key(id)
  redis.call('ZREM', LEASES, id)
  local f = redis.call('HMGET', jk, 'state', 'attempt', 'max_attempts', 'queue', 'worker',
                       'cancel_requested', 'modules')
  if f[1] ~= 'running' then return nil end
  local attempt, max_attempts = tonumber(f[2]) or 0, tonumber(f[3]) or 1
  local queue, worker = f[4], f[5] or ''
  if worker ~= '' then redis.call('SREM', worker_jobs_key(worker), id) end
  local event = {id = id, attempt = attempt, worker = worker, queue = queue, reason = reason}
  if reason == 'lease expired' then redis.call('HINCRBY', STATS, 'leases_expired', 1) end
  local record = {attempt = attempt, worker_id = or_null(worker)}
  if f[6] == '1' then  -- its cancel was asked: never handed out again
    record.reason = 'cancelled (' .. reason .. ')'
    finish(id, 'cancelled', {reason = record.reason}, record)
    event.outcome = 'cancelled'
  elseif attempt >= max_attempts then
    record.reason = reason .. ' after ' .. attempt .. ' of ' .. max_attempts .. ' attempts'
    finish(id, 'failed', {reason = record.reason}, record)
    redis.call('HINCRBY', STATS, 'attempts_exhausted', 1)
    event.outcome = 'failed'
  else
    local now = now_ms()
    redis.call('HSET', jk, 'state', 'queued', 'worker', '', 'lease_until', '')
    local not_before = (retry_after_ms or 0) > 0 and now + retry_after_ms or nil
    place(id, queue, true, not_before, now)
    count_waiting(queue, f[7], 1)
    record.event, record.reason = name or 'requeued', reason
    if not_before then record.not_before = not_before end
    add_event(id, record)
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

-- Forget a job's live state entirely (hash, history, marks).
local function drop_job(id)
  redis.call('DEL', job_key(id), history_key(id))
  redis.call('SREM', FINISHED, id)
  redis.call('SREM', DIRTY, id)
end
