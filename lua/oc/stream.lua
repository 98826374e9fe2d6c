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
local publish = require "oc.publish"
local request = require "oc.request"
local store = require "oc.store"

local ngx = ngx
local re_match = ngx.re.match
local print, flush = ngx.print, ngx.flush

local _M = {}

local KEEPALIVE = 15          -- seconds between ": keep-alive" comments
local READ_TIMEOUT = 3600000  -- ms a subscribed read may wait (a quiet puzzle)

-- A subscribed connection never goes back to the pool: it is closed when the
-- stream ends (a pooled one taken here was already authenticated and selected).
local connect = store.connect


local function keepalive()
    while true do
        ngx.sleep(KEEPALIVE)
        local ok = print(": keep-alive\n\n")
        if not ok or not flush(false) then
            return
        end
    end
end

function _M.serve()
    -- the access phase let anonymous callers through (services decide on /newapi)
    if not publish.user_id() then
        return errors.exit(401, "unauthorized", "credentials required; send Authorization: Token <token>",
            nil, { ["WWW-Authenticate"] = 'Token realm="object_challenge"' })
    end
    local m = re_match(ngx.var.uri, [[^/newapi/puzzle/(\d{1,18})/updates/?$]], "jo")
    if not m then
        return errors.exit(404, "puzzle_not_found", "no such puzzle; puzzle ids are whole numbers")
    end
    local puzzle_id = m[1]
    local red, err = connect()
    if not red then
        ngx.log(ngx.ERR, "stream: ", err)
        return errors.exit(503, "stream_unavailable", "the update stream is unavailable; retry shortly")
    end
    local known
    known, err = red:exists(publish.stem(puzzle_id))
    if known ~= 1 then
        red:close()
        if known == nil then
            ngx.log(ngx.ERR, "stream: redis exists: ", err)
        end
        return ngx.exec("@publish_stream")
    end
    local res
    res, err = red:subscribe(publish.channel(puzzle_id))
    if not res or res[1] ~= "subscribe" then
        red:close()
        ngx.log(ngx.ERR, "stream: subscribe: ", err)
        return errors.exit(503, "stream_unavailable", "the update stream is unavailable; retry shortly")
    end
    red:set_timeout(READ_TIMEOUT)

    local ok = ngx.on_abort(function()
        ngx.exit(499)
    end)
    if not ok then
        ngx.log(ngx.WARN, "stream: lua_check_client_abort is off; a gone client is noticed on the next write")
    end
    ngx.status = 200
    local h = ngx.header
    h["Content-Type"] = "text/event-stream"
    h["X-Accel-Buffering"] = "no"
    publish.no_store()
    if ngx.var.oc_request_id == nil then -- older confs: no add_header for it
        h["X-Request-Id"] = request.id()
    end
    print(": ok\n\n")
    flush(true)
    local beats = ngx.thread.spawn(keepalive)

    while true do
        res, err = red:read_reply()
        if res then
            if res[1] == "message" then
                ok = print("data: ", res[3], "\n\n")
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
    return ngx.exit(ngx.OK)
end

return _M
