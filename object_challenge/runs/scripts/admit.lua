-- Admit a run under the per-user cap of active runs.
-- KEYS[1]  oc:runs:active:<user>        ZSET run id -> admitted at (ms)
-- ARGV[1]  the job hash key prefix ("oc:jobs:job:")
-- ARGV[2]  the cap;  ARGV[3] the run id;  ARGV[4] now (ms)
-- Members whose job hash is gone (finished and recorded, or deleted) or final are
-- dropped first. Returns {1, active count} when admitted, {0, active count} when not.
local final = { completed = true, failed = true, cancelled = true }
local members = redis.call("ZRANGE", KEYS[1], 0, -1)
for _, id in ipairs(members) do
    local state = redis.call("HGET", ARGV[1] .. id, "state")
    if not state or final[state] then
        redis.call("ZREM", KEYS[1], id)
    end
end
local count = redis.call("ZCARD", KEYS[1])
if count >= tonumber(ARGV[2]) then
    return { 0, count }
end
redis.call("ZADD", KEYS[1], ARGV[4], ARGV[3])
redis.call("PEXPIRE", KEYS[1], 86400000)
return { 1, count + 1 }
