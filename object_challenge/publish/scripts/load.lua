-- load.lua: put a puzzle's board into Redis (from MongoDB), unless it is already there.
-- KEYS[1] meta hash   KEYS[2] pieces hash   KEYS[3] groups hash   KEYS[4] updates list
-- KEYS[5] set of the puzzles Redis holds
-- ARGV[1] meta JSON (flat object: rows, cols, ..., status, seq, immovable, count)
-- ARGV[2] pieces JSON: [[id, x, y, r, group, immovable 0/1], ...]   ARGV[3] puzzle id
-- Returns 1 when loaded, 0 when Redis already had the puzzle (a concurrent load won).
if redis.call("EXISTS", KEYS[1]) == 1 then
    return 0
end
redis.call("DEL", KEYS[2], KEYS[3], KEYS[4])
local pieces = cjson.decode(ARGV[2])
local args, members = {}, {}
for _, p in ipairs(pieces) do
    args[#args + 1] = p[1]
    args[#args + 1] = format_piece({ x = p[2], y = p[3], r = p[4], g = p[5], i = p[6] })
    local list = members[p[5]]
    if not list then
        list = {}
        members[p[5]] = list
    end
    list[#list + 1] = p[1]
    if #args >= 2000 then
        redis.call("HSET", KEYS[2], unpack(args))
        args = {}
    end
end
if #args > 0 then
    redis.call("HSET", KEYS[2], unpack(args))
end
for g, list in pairs(members) do
    if #list > 1 then
        table.sort(list)
        redis.call("HSET", KEYS[3], g, table.concat(list, ","))
    end
end
local meta = {}
for k, v in pairs(cjson.decode(ARGV[1])) do
    meta[#meta + 1] = k
    meta[#meta + 1] = v
end
meta[#meta + 1] = "last_move" -- loading counts as activity for eviction
meta[#meta + 1] = now_ms()
-- meta last: its presence means the whole board is there
redis.call("HSET", KEYS[1], unpack(meta))
redis.call("SADD", KEYS[5], ARGV[3])
return 1
