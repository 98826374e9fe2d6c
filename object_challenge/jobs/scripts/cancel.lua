-- cancel.lua: cancel a job. A queued job is `cancelled` at once (out of its queue or
-- delayed set); a running one gets `cancel_requested` (its holder learns it from its
-- next heartbeat; completion, release or lease expiry then end it `cancelled`).
-- KEYS[1] job hash
-- ARGV[1] prefix  ARGV[2] job id
-- returns JSON {"outcome": "cancelled" | "cancel_requested"} or {"refused": "unknown"
--   | "finished", "state": ...}
local id = ARGV[2]
local f = redis.call('HMGET', KEYS[1], 'state', 'queue', 'modules')
local state = f[1]
if not state then return encode({refused = 'unknown'}) end
if state == 'queued' then
  redis.call('LREM', queue_key(f[2]), 1, id)
  redis.call('ZREM', delayed_key(f[2]), id)
  count_waiting(f[2], f[3], -1)
  finish(id, 'cancelled', {reason = 'cancelled while queued', not_before = ''}, {reason = 'cancelled while queued'})
  return encode({outcome = 'cancelled'})
end
if state == 'running' then
  if redis.call('HGET', KEYS[1], 'cancel_requested') ~= '1' then
    redis.call('HSET', KEYS[1], 'cancel_requested', '1')
    add_event(id, {event = 'cancel_requested'})
  end
  return encode({outcome = 'cancel_requested'})
end
return encode({refused = 'finished', state = state})
