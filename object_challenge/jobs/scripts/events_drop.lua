-- events_drop.lua: forget a job's events in Redis once MongoDB holds them (or the job is deleted).
-- KEYS[1] events stream  KEYS[2] events meta hash  KEYS[3] events index (set of job ids)
-- ARGV[1] job id  ARGV[2] the count archived ('' = drop whatever is there)
-- returns 1 when dropped, 0 when the stream holds another count than archived (archive again)
if ARGV[2] ~= '' and redis.call('XLEN', KEYS[1]) ~= tonumber(ARGV[2]) then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('SREM', KEYS[3], ARGV[1])
return 1
