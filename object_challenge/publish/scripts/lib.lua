-- lib.lua: prepended to every publish script (board.py does it); helpers only.
-- A piece is stored as "x,y,r,group,immovable" in the pieces hash.
local cjson = cjson

local function parse_piece(raw)
    local x, y, r, g, i = string.match(raw, "^(-?%d+),(-?%d+),(-?%d+),(%d+),([01])$")
    return { x = tonumber(x), y = tonumber(y), r = tonumber(r), g = tonumber(g), i = tonumber(i) }
end

local function format_piece(p)
    return p.x .. "," .. p.y .. "," .. p.r .. "," .. p.g .. "," .. p.i
end

local function public_piece(id, p)
    return { id = id, x = p.x, y = p.y, r = p.r, group = p.g, immovable = p.i == 1 }
end

local function split_ids(csv)
    local out = {}
    for id in string.gmatch(csv, "%d+") do
        out[#out + 1] = tonumber(id)
    end
    return out
end

local function refuse(why, retry_ms)
    return cjson.encode({ refused = why, retry_ms = retry_ms })
end

local function now_ms()
    local t = redis.call("TIME")
    return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- HMGET of any number of fields (unpack has a stack limit of a few thousand)
local function hmget(key, ids)
    local out = {}
    for i = 1, #ids, 1000 do
        local part = redis.call("HMGET", key, unpack(ids, i, math.min(i + 999, #ids)))
        for k = 1, #part do
            out[#out + 1] = part[k]
        end
    end
    return out
end
