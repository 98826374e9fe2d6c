-- enqueue.lua: put new jobs at the TAIL of their queue (or in its delayed set), atomically
-- with their live state and document: all of them or, when one id is taken, none.
-- KEYS[1] queue list (oc:jobs:queue:<name>)   KEYS[2] queue names set (oc:jobs:queues)
-- ARGV[1] prefix  ARGV[2] queue name
-- then 7 per job: id, max attempts, deliveries it already had (0 for a new job; `jobs
-- recover` after a Redis loss), its task modules ("a,b", sorted), not before (ms, Redis
-- clock; 0: none), its document (JSON, with the history so far), its answer template
-- (queue.answer_template: what the gateway's poll and completion answers are made of)
-- returns the number of jobs enqueued; 0 if any id already exists (nothing done)
local queue = ARGV[2]
for i = 3, #ARGV, 7 do
  if redis.call('EXISTS', job_key(ARGV[i])) == 1 then return 0 end
end
local now = now_ms()
local n = 0
for i = 3, #ARGV, 7 do
  local id, not_before = ARGV[i], tonumber(ARGV[i + 4]) or 0
  redis.call('HSET', job_key(id), 'queue', queue, 'state', 'queued', 'attempt', ARGV[i + 2],
             'max_attempts', ARGV[i + 1], 'worker', '', 'lease_until', '', 'modules', ARGV[i + 3],
             'doc', ARGV[i + 5], 'tpl', ARGV[i + 6])
  place(id, queue, false, not_before > 0 and not_before or nil, now)
  count_waiting(queue, ARGV[i + 3], 1)
  redis.call('SADD', DIRTY, id)
  n = n + 1
end
redis.call('SADD', KEYS[2], queue)
return n
