-- clear.lua: empty a queue; the jobs waiting in it (in line or delayed) are forgotten
-- (running ones stay).
-- KEYS[1] queue list  KEYS[2] the queue's delayed zset  KEYS[3] its waiting-by-modules hash
-- ARGV[1] prefix
-- returns the ids that were waiting, head first, then the delayed ones
local ids = redis.call('LRANGE', KEYS[1], 0, -1)
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do ids[#ids + 1] = id end
local gone = {}
for _, id in ipairs(ids) do
  if redis.call('HGET', job_key(id), 'state') == 'queued' then
    drop_job(id)
    gone[#gone + 1] = id
  end
end
redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
return gone
