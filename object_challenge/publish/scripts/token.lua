-- token.lua: grant the lock on a piece and its move token.
-- KEYS[1] meta hash   KEYS[2] pieces hash   KEYS[3] lock of the piece
-- KEYS[4] token of the piece   KEYS[5] ban of the player on this puzzle
-- KEYS[6] stats hash (metrics: one HINCRBY of "token:granted" or "token:<why>")
-- ARGV[1] piece id   ARGV[2] player id   ARGV[3] a fresh token (made by the caller)
-- ARGV[4] mark ("" when none)   ARGV[5] lock ms   ARGV[6] token ms
-- Returns JSON {"token", "lock_ms", "token_ms", "now_ms", "same"} (ms left on each),
-- or {"refused": "missing"|"no_piece"|"complete"|"immovable"|"locked"|"banned", "retry_ms"}.
-- Order: unknown -> complete/immovable (400) -> the holder again (200, never 429)
-- -> someone else's lock (409) -> ban (429) -> grant.
local function refused(why, retry_ms)
    redis.call("HINCRBY", KEYS[6], "token:" .. why, 1)
    return refuse(why, retry_ms)
end

local meta = redis.call("HMGET", KEYS[1], "count", "status")
if not meta[1] then
    return refuse("missing") -- not counted: the service loads the board and asks again
end
local n = tonumber(ARGV[1])
if not n or n < 0 or n >= tonumber(meta[1]) then
    return refused("no_piece")
end
if meta[2] == "complete" then
    return refused("complete")
end
local raw = redis.call("HGET", KEYS[2], ARGV[1])
if not raw then
    return refused("no_piece")
end
if parse_piece(raw).i == 1 then
    return refused("immovable")
end

local player, mark = ARGV[2], ARGV[4]
local holder = redis.call("GET", KEYS[3])
if holder then
    if holder == player .. "|" .. mark then
        local current = redis.call("GET", KEYS[4])
        if current then
            local tok, owner = string.match(current, "^([^|]*)|(.*)$")
            if owner == player then
                redis.call("HINCRBY", KEYS[6], "token:granted", 1)
                return cjson.encode({ token = tok, lock_ms = redis.call("PTTL", KEYS[3]),
                                      token_ms = redis.call("PTTL", KEYS[4]), now_ms = now_ms(),
                                      same = true })
            end
        end
    else
        return refused("locked", redis.call("PTTL", KEYS[3]))
    end
end

local ban_ms = redis.call("PTTL", KEYS[5])
if ban_ms > 0 then
    return refused("banned", ban_ms)
end

local lock_ms, token_ms = tonumber(ARGV[5]), tonumber(ARGV[6])
redis.call("SET", KEYS[3], player .. "|" .. mark, "PX", lock_ms)
redis.call("SET", KEYS[4], ARGV[3] .. "|" .. player, "PX", token_ms)
redis.call("HINCRBY", KEYS[6], "token:granted", 1)
return cjson.encode({ token = ARGV[3], lock_ms = lock_ms, token_ms = token_ms, now_ms = now_ms(),
                      same = false })
