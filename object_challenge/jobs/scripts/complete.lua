-- complete.lua: finish a running job as `completed` or `failed` (final either way);
-- `cancelled` when its cancel was asked meanwhile.
-- KEYS[1] job hash
-- ARGV[1] prefix  ARGV[2] job id  ARGV[3] worker id or '' (anyone may complete)
-- ARGV[4] 'completed' | 'failed'  ARGV[5] result JSON (kept until MongoDB has it)
-- ARGV[6] worker to record when nobody holds the lease and ARGV[3] is '' (the
--         reference worker names itself only inside its completion body)
-- ARGV[7] '1': what the gateway renders the answer from (with the template it read
--         before), too: `finished_at` (ms) and the history events
-- returns JSON {"ok": true, attempt, worker, state[, finished_at, history]} or
--   {"refused": "unknown" | "not_running" | "not_holder", "state": ..., "worker": ...}
local id, worker, outcome = ARGV[2], ARGV[3], ARGV[4]
local f = redis.call('HMGET', KEYS[1], 'state', 'worker', 'attempt', 'cancel_requested')
local state, holder = f[1], f[2] or ''
if not state then return encode({refused = 'unknown'}) end
if state ~= 'running' then return encode({refused = 'not_running', state = state}) end
if worker ~= '' and holder ~= '' and holder ~= worker then
  return encode({refused = 'not_holder', state = state, worker = holder})
end
if holder == '' then holder = (worker ~= '' and worker) or ARGV[6] end
if f[4] == '1' then outcome = 'cancelled' end  -- its cancel was asked: whatever the task did
redis.call('ZREM', LEASES, id)
if holder ~= '' then redis.call('SREM', worker_jobs_key(holder), id) end
finish(id, outcome, {worker = holder, result = ARGV[5]}, {attempt = tonumber(f[3]), worker_id = or_null(holder)})
local answer = {ok = true, attempt = tonumber(f[3]), worker = holder, state = outcome}
if ARGV[7] == '1' then
  answer.finished_at = tonumber(redis.call('HGET', KEYS[1], 'finished_at'))
  answer.history = redis.call('LRANGE', history_key(id), 0, -1)
end
return encode(answer)
