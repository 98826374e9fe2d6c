-- GET /newapi/puzzle/<id>/updates/ (no ?since=): Server-Sent Events of every
-- applied move, served by the gateway itself from Redis pub/sub, so watchers
-- cost no Python worker.  move.lua PUBLISHes one JSON message per move on the
-- puzzle's channel; each becomes one "data:" line here.
--
-- The status line, headers and a ": ok" comment go out only once Redis has
-- confirmed the SUBSCRIBE: a client that has its headers misses no later move
-- (earlier ones: GET ...?since=<seq>).  A light thread sends a keep-alive
-- comment every KEEPALIVE seconds; the client going away ends the request.
-- A puzzle Redis does not hold (unknown, still generating, evicted, or Redis
-- lost it): one catch-up read through the publish service (load) reloads it
-- or answers 404 / 409 puzzle_generating, and the stream is served here all
-- the same: no stream holds a service worker.
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
local LOAD = "/_oc/publish/"        -- internal location: the publish service's puzzle routes
local SINCE_END = "9007199254740991" -- a catch-up past any seq: loads the board, returns nothing

local function unavailable()
    return nil, errors.new(503, "stream_unavailable", ERR_UNAVAILABLE, { ["Retry-After"] = "1" })
end

-- A puzzle Redis does not hold: ask the publish service for a catch-up past
-- the end (it reloads the board from MongoDB, or refuses). nil when the
-- board is loaded now, else the service's answer {status, headers, body}.
function _M.load(puzzle_id, caller)
    local res = ngx.location.capture(LOAD .. puzzle_id .. "/updates/",
        { args = { since = SINCE_END }, ctx = { oc_caller = caller } })
    if res.status == ngx.HTTP_OK then
        return nil
    end
    local h = res.header or {}
    return { status = res.status, body = res.body,
             headers = { ["Retry-After"] = h["Retry-After"], ["WWW-Authenticate"] = h["WWW-Authenticate"] } }
end

-- A Redis connection subscribed to the puzzle of uri and the puzzle id, or
-- false and the id (a puzzle Redis does not hold: load it), or nil and a refusal.
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
            return unavailable()
        end
        return false, puzzle_id
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
            -- Redis went away (restarted, maybe without the board): tell the
            -- watcher to re-read the board before it reconnects
            ngx.log(ngx.WARN, "stream of puzzle ", puzzle_id, " ends: redis ", err)
            print('event: reload\ndata: {"reload":true,"puzzle_id":', puzzle_id, '}\n\n')
            flush(false)
            break
        end
    end
    ngx.thread.kill(beats)
    red:close()
end

return _M
