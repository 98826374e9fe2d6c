-- evict.lua: drop an idle board from Redis once MongoDB has all of it.
-- KEYS[1] meta hash   KEYS[2] pieces hash   KEYS[3] groups hash   KEYS[4] updates list
-- KEYS[5] dirty zset   KEYS[6] set of the puzzles Redis holds
-- KEYS[7] set of the puzzles evicted with MongoDB up to date (a reload keeps their seq)
-- ARGV[1] puzzle id   ARGV[2] idle ms (no move, no load for this long)
-- Returns 1 when dropped, 0 when kept (dirty, or active lately); a board that is
-- gone already is just forgotten. The next request reloads it (load.lua).
if redis.call("EXISTS", KEYS[1]) == 0 then
    redis.call("SREM", KEYS[6], ARGV[1])
    return 0
end
if redis.call("ZSCORE", KEYS[5], ARGV[1]) then
    return 0
end
local last = tonumber(redis.call("HGET", KEYS[1], "last_move") or "0")
if now_ms() - last < tonumber(ARGV[2]) then
    return 0
end
redis.call("DEL", KEYS[1], KEYS[2], KEYS[3], KEYS[4])
redis.call("SREM", KEYS[6], ARGV[1])
redis.call("SADD", KEYS[7], ARGV[1])
return 1
