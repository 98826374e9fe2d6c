-- move.lua: apply one move, atomically: check and consume the token, move the
-- piece's group (clamped to the table), join adjacent groups, propagate
-- immovability, detect completion, bump the sequence, keep the update and publish it.
-- KEYS[1] meta hash   KEYS[2] pieces hash   KEYS[3] groups hash   KEYS[4] updates list
-- KEYS[5] token of the piece   KEYS[6] lock of the piece   KEYS[7] rate of the player
-- KEYS[8] ban of the player   KEYS[9] dirty zset   KEYS[10] stats hash (metrics)
-- ARGV[1] puzzle id   ARGV[2] piece id   ARGV[3] token   ARGV[4] player id
-- ARGV[5] x   ARGV[6] y   ARGV[7] r ("" keeps it)   ARGV[8] moves per window
-- ARGV[9] window ms   ARGV[10] ban ms   ARGV[11] join tolerance px
-- ARGV[12] updates retained   ARGV[13] channel
-- Returns JSON {"seq", "complete", "banned"} or
-- {"refused": "missing"|"no_piece"|"token"|"complete"|"immovable"|"banned", "retry_ms"}.
-- A refusal writes nothing but its count: one HINCRBY of the stats hash, field
-- "move:<why>" ("move:accepted" for a move applied; "missing" is not counted: the
-- service reloads the board and runs the move again).
local function refused(why, retry_ms)
    redis.call("HINCRBY", KEYS[10], "move:" .. why, 1)
    return refuse(why, retry_ms)
end

local m = redis.call("HMGET", KEYS[1], "count", "rows", "cols", "table_width", "table_height",
    "piece_width", "piece_height", "status", "immovable")
if not m[1] then
    return refuse("missing") -- not counted: the service loads the board and asks again
end
local count, rows, cols = tonumber(m[1]), tonumber(m[2]), tonumber(m[3])
local tw, th, pw, ph = tonumber(m[4]), tonumber(m[5]), tonumber(m[6]), tonumber(m[7])
local status, immovable_count = m[8], tonumber(m[9])
local n = tonumber(ARGV[2])
if not n or n < 0 or n >= count then
    return refused("no_piece")
end
local player = ARGV[4]
if redis.call("GET", KEYS[5]) ~= ARGV[3] .. "|" .. player then
    return refused("token")
end
if status == "complete" then
    return refused("complete")
end
local piece = parse_piece(redis.call("HGET", KEYS[2], n))
if piece.i == 1 then
    return refused("immovable")
end
local ban_ms = redis.call("PTTL", KEYS[8])
if ban_ms > 0 then
    return refused("banned", ban_ms)
end

-- the moved group, translated and clamped as one
local members
if piece.g == n then
    local csv = redis.call("HGET", KEYS[3], n)
    members = csv and split_ids(csv) or { n }
else
    members = split_ids(redis.call("HGET", KEYS[3], piece.g))
end
local state, in_group = {}, {}
local raws = hmget(KEYS[2], members)
local minx, miny, maxx, maxy = math.huge, math.huge, -math.huge, -math.huge
for k, id in ipairs(members) do
    local p = parse_piece(raws[k])
    state[id], in_group[id] = p, true
    minx, maxx = math.min(minx, p.x), math.max(maxx, p.x)
    miny, maxy = math.min(miny, p.y), math.max(maxy, p.y)
end
local function clamp(v, lo, hi)
    if v < lo then return lo end
    if v > hi then return hi end
    return v
end
local dx = clamp(math.floor(tonumber(ARGV[5]) + 0.5) - piece.x, -minx, tw - pw - maxx)
local dy = clamp(math.floor(tonumber(ARGV[6]) + 0.5) - piece.y, -miny, th - ph - maxy)
for _, id in ipairs(members) do
    local p = state[id]
    p.x, p.y = p.x + dx, p.y + dy
end
minx, maxx, miny, maxy = minx + dx, maxx + dx, miny + dy, maxy + dy
if #members == 1 and ARGV[7] ~= "" then
    state[n].r = math.floor(tonumber(ARGV[7]) + 0.5) % 360
end

-- joins: a member within the tolerance of where an adjacent piece (same
-- rotation, unrotated) expects it; immovable neighbours first, then the closest
local tol = tonumber(ARGV[11])
local function correct(id)
    return (id % cols) * pw, math.floor(id / cols) * ph
end
local pairs_, wanted, seen = {}, {}, {}
for _, id in ipairs(members) do
    local row, col = math.floor(id / cols), id % cols
    local around = {}
    if row > 0 then around[#around + 1] = id - cols end
    if row < rows - 1 then around[#around + 1] = id + cols end
    if col > 0 then around[#around + 1] = id - 1 end
    if col < cols - 1 then around[#around + 1] = id + 1 end
    for _, k in ipairs(around) do
        if not in_group[k] then
            pairs_[#pairs_ + 1] = { id, k }
            if not seen[k] then
                seen[k] = true
                wanted[#wanted + 1] = k
            end
        end
    end
end
local near = {}
if #wanted > 0 then
    local nraws = hmget(KEYS[2], wanted)
    for k, id in ipairs(wanted) do
        near[id] = parse_piece(nraws[k])
    end
end
local candidates = {}
for _, pair in ipairs(pairs_) do
    local p, q = state[pair[1]], near[pair[2]]
    if p.r == q.r and p.r % 360 == 0 then
        local cpx, cpy = correct(pair[1])
        local cqx, cqy = correct(pair[2])
        local jx, jy = q.x + cpx - cqx - p.x, q.y + cpy - cqy - p.y
        if math.abs(jx) <= tol and math.abs(jy) <= tol
            and minx + jx >= 0 and maxx + jx <= tw - pw and miny + jy >= 0 and maxy + jy <= th - ph then
            candidates[#candidates + 1] = { g = q.g, i = q.i, jx = jx, jy = jy,
                                            dist = math.abs(jx) + math.abs(jy) }
        end
    end
end

local changed = {}
for _, id in ipairs(members) do
    changed[id] = true
end
local joined = {}
if #candidates > 0 then
    table.sort(candidates, function(a, b)
        if a.i ~= b.i then return a.i > b.i end
        if a.dist ~= b.dist then return a.dist < b.dist end
        return a.g < b.g
    end)
    local best = candidates[1]
    for _, id in ipairs(members) do
        local p = state[id]
        p.x, p.y = p.x + best.jx, p.y + best.jy
    end
    -- other groups join only if the snap left them exactly in place
    local groups = { [best.g] = best.i }
    for _, c in ipairs(candidates) do
        if c.jx == best.jx and c.jy == best.jy then
            groups[c.g] = math.max(groups[c.g] or 0, c.i)
        end
    end
    local new_g, imm = piece.g, 0
    for g, i in pairs(groups) do
        new_g = math.min(new_g, g)
        imm = math.max(imm, i)
    end
    local csvs = {}
    for _, id in ipairs(members) do
        csvs[#csvs + 1] = id
    end
    for g, i in pairs(groups) do
        local csv = redis.call("HGET", KEYS[3], g)
        local ids = csv and split_ids(csv) or { g }
        if g ~= new_g or i ~= imm then
            local graws = hmget(KEYS[2], ids)
            for k, id in ipairs(ids) do
                state[id] = parse_piece(graws[k])
                changed[id] = true
            end
        end
        if g ~= new_g then
            redis.call("HDEL", KEYS[3], g)
        end
        csvs[#csvs + 1] = csv or g
    end
    if piece.g ~= new_g then
        redis.call("HDEL", KEYS[3], piece.g)
    end
    redis.call("HSET", KEYS[3], new_g, table.concat(csvs, ","))
    for id in pairs(changed) do
        local p = state[id]
        p.g = new_g
        if imm == 1 and p.i == 0 then
            p.i = 1
            immovable_count = immovable_count + 1
        end
    end
end

local out, args = {}, {}
for id in pairs(changed) do
    local p = state[id]
    args[#args + 1] = id
    args[#args + 1] = format_piece(p)
    out[#out + 1] = public_piece(id, p)
end
table.sort(out, function(a, b) return a.id < b.id end)
for i = 1, #args, 2000 do
    redis.call("HSET", KEYS[2], unpack(args, i, math.min(i + 1999, #args)))
end

-- the token is spent and the lock freed; only now does the move count
redis.call("DEL", KEYS[5])
local holder = redis.call("GET", KEYS[6])
if holder and string.sub(holder, 1, #player + 1) == player .. "|" then
    redis.call("DEL", KEYS[6])
end
local banned = false
local moves = redis.call("INCR", KEYS[7])
if moves == 1 then
    redis.call("PEXPIRE", KEYS[7], ARGV[9])
end
if moves >= tonumber(ARGV[8]) then
    redis.call("SET", KEYS[8], "1", "PX", ARGV[10])
    redis.call("DEL", KEYS[7])
    banned = true
end

local complete = immovable_count >= count
local now = now_ms()
local seq = redis.call("HINCRBY", KEYS[1], "seq", 1)
redis.call("HSET", KEYS[1], "immovable", immovable_count, "last_move", now)
local update = { seq = seq, pieces = out }
if complete then
    redis.call("HSET", KEYS[1], "status", "complete")
    update.status = "complete"
end
local json = cjson.encode(update)
redis.call("RPUSH", KEYS[4], json)
redis.call("LTRIM", KEYS[4], -tonumber(ARGV[12]), -1)
redis.call("ZADD", KEYS[9], "NX", now, ARGV[1])
redis.call("PUBLISH", ARGV[13], json)
redis.call("HINCRBY", KEYS[10], "move:accepted", 1)
return cjson.encode({ seq = seq, complete = complete, banned = banned })
