-- GET /newapi/puzzle/<id>/updates/ (no ?since=): Server-Sent Events of every
-- applied move, served by the gateway itself from Redis pub/sub, so watchers
-- cost no Python worker.  move.lua PUBLISHes one JSON message per move on the
-- puzzle's channel; each becomes one "data:" line here.
--
-- The status line, headers and a ": ok" comment go out only once Redis has
-- confirmed the SUBSCRIBE: a client that has its headers misses no later move
-- (earlier ones: GET ...?since=<seq>).  A light thread sends a keep-alive
-- comment every KEEPALIVE seconds; the client going away ends the request.
-- A puzzle Redis does not hold (unknown, or Redis lost it) goes to the publish
-- service, which answers 404 or reloads it and streams itself.
local errors = require "oc.errors"
local keys = require "oc.keys"
local store = require "oc.store"

local ngx = ngx
local re_match = ngx.re.match
local print, flush = ngx.print, ngx.flush

local _M = {}

local KEEPALIVE = 15          -- seconds between ": keep-alive" comments
local READ_TIMEOUT = 3600000  -- ms a subscribed read may wait (a quiet puzzle)
local ROUTE = [[^/newapi/puzzle/(\d{1,18})/updates/?$]]

local ERR_NO_PUZZLE = "no such puzzle; puzzle ids are whole numbers"
local ERR_UNAVAILABLE = "the update stream is unavailable; retry shortly"

local function unavailable()
    return nil, errors.new(503, "stream_unavailable", ERR_UNAVAILABLE)
end

-- A Redis connection subscribed to the puzzle of uri, or false (a puzzle
-- Redis does not hold: the publish service decides), or nil and a refusal.
-- A subscribed connection never goes back to the pool: relay closes it (a
-- pooled one taken here was already authenticated and selected).
function _M.open(uri)
    local m = re_match(uri, ROUTE, "jo")
    if not m then
        return nil, errors.new(404, "puzzle_not_found", ERR_NO_PUZZLE)
    end
    local puzzle_id = m[1]
    local red, err = store.connect()
    if not red then
        ngx.log(ngx.ERR, "stream: ", err)
        return unavailable()
    end
    local known
    known, err = red:exists(keys.pub_meta(puzzle_id))
    if known ~= 1 then
        red:close()
        if known == nil then
            ngx.log(ngx.ERR, "stream: redis exists: ", err)
        end
        return false
    end
    local res
    res, err = red:subscribe(keys.pub_channel(puzzle_id))
    if not res or res[1] ~= "subscribe" then
        red:close()
        ngx.log(ngx.ERR, "stream: subscribe: ", err)
        return unavailable()
    end
    red:set_timeout(READ_TIMEOUT)
    return red, puzzle_id
end

local function keepalive()
    while true do
        ngx.sleep(KEEPALIVE)
        local ok = print(": keep-alive\n\n")
        if not ok or not flush(false) then
            return
        end
    end
end

-- Once the headers are out: ": ok", then one "data:" line per message
-- until the client or Redis goes away; the connection is closed.
function _M.relay(red, puzzle_id)
    print(": ok\n\n")
    flush(true)
    local beats = ngx.thread.spawn(keepalive)
    while true do
        local res, err = red:read_reply()
        if res then
            if res[1] == "message" then
                local ok = print("data: ", res[3], "\n\n")
                if not ok or not flush(false) then
                    break
                end
            end
        elseif err ~= "timeout" then
            ngx.log(ngx.WARN, "stream of puzzle ", puzzle_id, " ends: redis ", err)
            break
        end
    end
    ngx.thread.kill(beats)
    red:close()
end

return _M
