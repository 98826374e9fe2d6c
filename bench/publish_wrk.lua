-- wrk script for bench/publish.py: one connection per wrk thread = one player.
--   wrk -tN -cN ... -s bench/publish_wrk.lua URL -- cycle PUZZLE
--   wrk -tN -cN ... -s bench/publish_wrk.lua URL -- get PATH
-- Thread i is player tok_bench<i> (i from 1).  "cycle": GET .../piece/i/token/,
-- then PATCH .../piece/i/move/ to the other of the player's two cells, and again.
-- "get": GET PATH with the same player's token (the trivial call).
-- done() prints one JSON line: totals, accepted moves, per-kind latency (ms).
local threads = {}

function setup(thread)
    thread:set("tid", #threads + 1)
    table.insert(threads, thread)
end

local ffi = require("ffi")
ffi.cdef [[
    typedef struct { long tv_sec; long tv_nsec; } oc_timespec;
    int clock_gettime(int clk, oc_timespec *ts);
]]
local ts = ffi.new("oc_timespec")
local function now_ms()
    ffi.C.clock_gettime(1, ts)
    return tonumber(ts.tv_sec) * 1e3 + tonumber(ts.tv_nsec) / 1e6
end

local CELLS = 13
local function cell(i)
    return 150 + 300 * (i % CELLS), 150 + 300 * math.floor(i / CELLS)
end

function init(args)
    mode = args[1]
    headers = { Authorization = string.format("Token tok_bench%03d", tid),
                ["Content-Type"] = "application/json" }
    lat_token, lat_move, lat_get = {}, {}, {}
    lat = { token = lat_token, move = lat_move, get = lat_get }
    accepted, refused, sample = 0, 0, ""
    if mode == "cycle" then
        base = "/newapi/puzzle/" .. args[2] .. "/piece/" .. tid .. "/"
        token_req = wrk.format("GET", base .. "token/", headers)
        state, flip = "token", 0
    else
        get_req = wrk.format("GET", args[2], headers)
    end
end

function request()
    started = now_ms()
    if mode ~= "cycle" then
        kind = "get"
        return get_req
    end
    kind = state
    if state == "token" then
        return token_req
    end
    flip = 1 - flip
    local x, y = cell(flip == 1 and 100 + tid or tid)
    return wrk.format("PATCH", base .. "move/", headers,
        string.format('{"token": "%s", "x": %d, "y": %d, "r": 0}', token, x, y))
end

local function note(status, body)
    refused = refused + 1
    if #sample < 300 then
        sample = sample .. kind .. " " .. status .. " " .. (body or ""):sub(1, 80):gsub('"', "'") .. "; "
    end
end

function response(status, hdrs, body)
    local list = lat[kind]
    list[#list + 1] = now_ms() - started
    if kind == "token" then
        token = status == 200 and body:match('"token"%s*:%s*"([^"]+)"')
        if token then
            state = "move"
        else
            note(status, body)
        end
    elseif kind == "move" then
        if status == 204 then
            accepted = accepted + 1
        else
            note(status, body)
        end
        state = "token"
    elseif status ~= 200 then
        note(status, body)
    end
end

local function pct(sorted, p)
    if #sorted == 0 then
        return 0
    end
    return sorted[math.max(1, math.ceil(#sorted * p / 100))]
end

function done(summary, latency, requests)
    local all = { token = {}, move = {}, get = {} }
    local acc, ref, samples = 0, 0, ""
    for _, t in ipairs(threads) do
        acc = acc + t:get("accepted")
        ref = ref + t:get("refused")
        samples = samples .. t:get("sample")
        -- flat tables only: wrk's thread:get crashes on nested ones
        for k, list in pairs(all) do
            for _, v in ipairs(t:get("lat_" .. k)) do
                list[#list + 1] = v
            end
        end
    end
    local secs = summary.duration / 1e6
    local parts = {}
    for k, list in pairs(all) do
        table.sort(list)
        parts[#parts + 1] = string.format('"%s": {"n": %d, "p50_ms": %.3f, "p99_ms": %.3f}',
            k, #list, pct(list, 50), pct(list, 99))
    end
    local e = summary.errors
    io.write(string.format('{"requests": %d, "duration_s": %.3f, "rps": %.1f, "accepted": %d, '
        .. '"accepted_per_s": %.1f, "refused": %d, "refusals": "%s", "errors": %d, "non2xx": %d, %s}\n',
        summary.requests, secs, summary.requests / secs, acc, acc / secs, ref, samples:sub(1, 500),
        e.connect + e.read + e.write + e.timeout, e.status, table.concat(parts, ", ")))
end
