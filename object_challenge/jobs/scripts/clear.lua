-- clear.lua: empty a queue; the jobs waiting in it are forgotten (running ones stay).
-- KEYS[1] queue list
-- ARGV[1] prefix
-- returns the ids that were waiting, head first
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for _, id in ipairs(ids) do
  if redis.call('HGET', job_key(id), 'state') == 'queued' then redis.call('DEL', job_key(id)) end
end
redis.call('DEL', KEYS[1])
return ids
