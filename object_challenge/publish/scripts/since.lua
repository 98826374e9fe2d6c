-- since.lua: the retained updates after a sequence number (the catch-up read).
-- KEYS[1] meta hash   KEYS[2] updates list
-- ARGV[1] since (a whole number >= 0)
-- Returns {seq, {update JSON, ...}}: every retained update with seq > since, oldest
-- first. The list holds consecutive seqs ending at the current one, so only the
-- tail that is asked for is read.
local seq = tonumber(redis.call("HGET", KEYS[1], "seq") or "0")
local len = redis.call("LLEN", KEYS[2])
local first = seq - len + 1
local start = math.max(0, tonumber(ARGV[1]) + 1 - first)
if start >= len then
    return { seq, {} }
end
return { seq, redis.call("LRANGE", KEYS[2], start, -1) }
