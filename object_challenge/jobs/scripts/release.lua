-- release.lua: the lease holder gives a running job back (it cannot run it now): the job
-- goes back to the HEAD of its queue, handed out again no sooner than retry_after ms
-- from now; the attempt counts (at max_attempts it is `failed`), a job whose cancel
-- was asked ends `cancelled`.
-- KEYS[1] job hash
-- ARGV[1] prefix  ARGV[2] job id  ARGV[3] worker id or '' (an admin, or a worker that
-- polled without one)  ARGV[4] retry after ms  ARGV[5] reason
-- returns JSON {"ok": true, "event": end_lease event} or {"refused": "unknown" |
--   "not_running" | "not_holder", "state": ..., "worker": ...}
local id, worker = ARGV[2], ARGV[3]
local f = redis.call('HMGET', KEYS[1], 'state', 'worker')
local state, holder = f[1], f[2] or ''
if not state then return encode({refused = 'unknown'}) end
if state ~= 'running' then return encode({refused = 'not_running', state = state}) end
if worker ~= '' and holder ~= '' and holder ~= worker then
  return encode({refused = 'not_holder', state = state, worker = holder})
end
local event = end_lease(id, ARGV[5], tonumber(ARGV[4]), 'released')
return encode({ok = true, event = event})
