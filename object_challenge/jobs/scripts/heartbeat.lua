-- heartbeat.lua: record a worker's status and extend the leases it holds.
-- Extends every running job whose lease the worker holds, plus the job named in the
-- heartbeat when it is running and unclaimed (polled without a worker id) or already
-- the worker's. A job held by another worker, or finished, is left alone.
-- KEYS[1] worker status string  KEYS[2] worker-jobs set of this worker
-- ARGV[1] prefix  ARGV[2] worker id  ARGV[3] status JSON  ARGV[4] client expiry s
-- ARGV[5] lease ms  ARGV[6] job id named by the heartbeat or ''
-- ARGV[7] '1' when the heartbeat lists the jobs it runs (ARGV[8..]): then only those of
--         its leases are extended; a lease it holds but does not list (the answer to its
--         poll was lost) runs out and the job is requeued. '0': every lease it holds.
-- returns JSON {"extended": {job id: lease deadline ms}, "claimed": job id | absent,
--               "cancel": [ids of its running jobs whose cancel was asked]}
local worker, expiry, lease_ms, named = ARGV[2], tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local now = now_ms()
redis.call('SET', KEYS[1], ARGV[3], 'PX', expiry * 1000)
redis.call('ZADD', WORKERS, now + expiry * 1000, worker)
local result = {extended = {}, cancel = {}}
local listed = nil
if ARGV[7] == '1' then
  listed = {}
  for i = 8, #ARGV do listed[ARGV[i]] = true end
end
for _, id in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local f = redis.call('HMGET', job_key(id), 'state', 'worker', 'cancel_requested')
  if f[1] == 'running' and f[2] == worker and listed and not listed[id] then
    -- held but not run: left to expire (kept in the set so that the expiry finds it)
  elseif f[1] == 'running' and f[2] == worker then
    result.extended[id] = extend_lease(id, worker, now, lease_ms)
    if f[3] == '1' then result.cancel[#result.cancel + 1] = id end
  else
    redis.call('SREM', KEYS[2], id)
  end
end
if named ~= '' and not result.extended[named] then
  local f = redis.call('HMGET', job_key(named), 'state', 'worker', 'cancel_requested')
  if f[1] == 'running' and (f[2] == '' or f[2] == worker) then
    if f[3] == '1' then result.cancel[#result.cancel + 1] = named end
    if f[2] == '' then
      redis.call('HSET', job_key(named), 'worker', worker)
      redis.call('SADD', KEYS[2], named)
      add_event(named, {event = 'claimed', worker_id = worker})
      result.claimed = named
    end
    result.extended[named] = extend_lease(named, worker, now, lease_ms)
  end
end
return encode(result)
