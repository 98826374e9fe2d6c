-- GET /newapi/puzzle/<id>/piece/<n>/token/ and PATCH .../move/, answered by
-- the gateway itself with the publish service's own Redis scripts
-- (object_challenge/publish/scripts/token.lua, move.lua): the service publishes their
-- SHA1s and settings in oc:pub:scripts, so both paths run the same decision.
-- Validation order as in publish/views.py: 401 -> 403 -> 400 -> 409.
-- Whatever the gateway cannot decide goes to the service (@publish_plain):
-- no scripts published yet, NOSCRIPT, Redis errors, odd URLs and methods, and
-- a puzzle Redis does not hold (the service reloads it from MongoDB). A
-- completed puzzle is written back by the scheduler within a second.
local cjson = require "cjson.safe"
local errors = require "oc.errors"
local publish = require "oc.publish"
local store = require "oc.store"

local ngx = ngx
local re_match, re_find = ngx.re.match, ngx.re.find
local tonumber, tostring, type = tonumber, tostring, type
local floor, huge, max = math.floor, math.huge, math.max

local random = require("oc.compat").random

local _M = {}

local SETTINGS_TTL = 1 -- s a worker keeps oc:pub:scripts
local MAX_MARK = 100
local NUMERIC = [[^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$]]


local cached = { at = -1, conf = false }

local function settings(red)
    local now = ngx.now()
    if now - cached.at < SETTINGS_TTL then
        return cached.conf
    end
    local res, err = red:hgetall(publish.SCRIPTS)
    if not res then
        return nil, err
    end
    local conf = false
    if #res > 0 then
        conf = red:array_to_hash(res)
        for _, name in ipairs({ "lock_ms", "token_ms", "rate_limit", "window_ms", "ban_ms",
                                "tolerance", "retained" }) do
            conf[name] = tonumber(conf[name])
        end
    end
    cached.at, cached.conf = now, conf
    return conf
end

local function to_service()
    return ngx.exec("@publish_plain")
end

local function bad(code, message)
    return errors.exit(400, code, message)
end

local function seconds(ms)
    return tostring(max(1, floor(((ms or 1000) + 500) / 1000)))
end

local function new_token()
    local bytes = random.bytes(18, true) or random.bytes(18)
    return (ngx.encode_base64(bytes):gsub("+", "-"):gsub("/", "_"):gsub("=", ""))
end

local function number(body, name, required)
    local v = body[name]
    if v == nil or v == cjson.null or v == "" then
        if required then
            return nil, bad("bad_move", name .. " is required (a number)")
        end
        return ""
    end
    if type(v) == "string" and re_find(v, NUMERIC, "jo") then
        v = tonumber(v)
    end
    if type(v) ~= "number" then
        return nil, bad("bad_move", name .. " must be a number")
    end
    if v ~= v or v == huge or v == -huge then
        return nil, bad("bad_move", name .. " must be a finite number")
    end
    return string.format("%.17g", v)
end

local function move_body()
    ngx.req.read_body()
    local raw = ngx.req.get_body_data()
    -- curl -d sends JSON labelled as a form: a body that starts with "{" is JSON
    local ctype = ngx.var.content_type or ""
    if ctype:find("^application/x%-www%-form%-urlencoded") and not (raw and raw:find("^%s*{")) then
        return ngx.req.get_post_args(20)
    end
    if not raw or raw == "" then
        return {}
    end
    local body = cjson.decode(raw)
    if body == nil then
        return nil, bad("bad_json", "the body is not valid JSON")
    end
    if type(body) ~= "table" or body[1] ~= nil then
        return nil, bad("bad_move", 'send a JSON object {"token": "...", "x": 0, "y": 0, "r": 0}')
    end
    return body
end

-- refusal reason -> status, code, message (as publish/service.py says them)
local function refuse(data, piece, conf)
    local why = data.refused
    if why == "no_piece" then
        return errors.exit(404, "piece_not_found", "this puzzle has no piece " .. piece
            .. "; pieces are numbered from 0 row by row")
    elseif why == "complete" and ngx.ctx.oc_move == "token" then
        return errors.exit(400, "puzzle_complete", "this puzzle is complete; no piece moves any more")
    elseif why == "immovable" and ngx.ctx.oc_move == "token" then
        return errors.exit(400, "piece_immovable", "piece " .. piece .. " is already in place and cannot move")
    elseif why == "complete" or why == "immovable" then
        return errors.exit(409, "piece_immovable", "piece " .. piece .. " is in place now and cannot move")
    elseif why == "locked" then
        return errors.exit(409, "piece_locked", "another player is moving piece " .. piece
            .. "; try again in a few seconds", nil, { ["Retry-After"] = seconds(data.retry_ms) })
    elseif why == "token" then
        return errors.exit(409, "token_invalid", "the move token is not valid for this piece and player: "
            .. "it was used, expired, or replaced; ask for a new one with GET .../token/")
    elseif why == "banned" then
        local wait = seconds(data.retry_ms)
        return errors.exit(429, "move_rate_exceeded", "more than " .. conf.rate_limit .. " moves in "
            .. (conf.window_ms / 1000) .. " s on this puzzle; wait " .. wait .. " s (Retry-After)",
            nil, { ["Retry-After"] = wait })
    end
    return to_service() -- "missing", or a reason this module does not know
end

local function token_args(p, n, player, conf)
    local mark = ngx.var.arg_mark
    mark = mark and ngx.unescape_uri(mark) or ""
    if #mark > MAX_MARK or mark:find("|", 1, true) then
        return nil, bad("bad_mark", "mark is a free string of at most " .. MAX_MARK .. " characters without '|'")
    end
    local s = publish.stem(p)
    return { conf.token_sha, 5, s, s .. ":pieces", s .. ":lock:" .. n, s .. ":token:" .. n,
             s .. ":ban:" .. player, n, player, new_token(), mark, conf.lock_ms, conf.token_ms }
end

local function move_args(p, n, player, conf)
    local body, err = move_body()
    if not body then
        return nil, err
    end
    local x, y, r
    x, err = number(body, "x", true)
    if not x then return nil, err end
    y, err = number(body, "y", true)
    if not y then return nil, err end
    r, err = number(body, "r", false)
    if not r then return nil, err end
    local token = body.token
    if type(token) ~= "string" or token == "" or token:find("|", 1, true) then
        return nil, bad("bad_move", "token is required: the string GET .../token/ gave you")
    end
    local s = publish.stem(p)
    return { conf.move_sha, 9, s, s .. ":pieces", s .. ":groups", s .. ":updates", s .. ":token:" .. n,
             s .. ":lock:" .. n, s .. ":rate:" .. player, s .. ":ban:" .. player, publish.DIRTY,
             p, n, token, player, x, y, r, conf.rate_limit, conf.window_ms, conf.ban_ms,
             conf.tolerance, conf.retained, publish.channel(p) }
end

function _M.serve()
    local player = publish.user_id()
    if not player then
        return errors.exit(401, "unauthorized", "credentials required; send Authorization: Token <token>",
            nil, { ["WWW-Authenticate"] = 'Token realm="object_challenge"' })
    end
    local m = re_match(ngx.var.uri, [[^/newapi/puzzle/(\d{1,12})/piece/(\d{1,9})/(token|move)/$]], "jo")
    local method = ngx.req.get_method()
    if not m or (m[3] == "token" and method ~= "GET") or (m[3] == "move" and method ~= "PATCH") then
        return to_service() -- its 404 / 405 / redirect
    end
    local p, n = tostring(tonumber(m[1])), tostring(tonumber(m[2]))
    ngx.ctx.oc_move = m[3]
    local red, err = store.connect()
    if not red then
        ngx.log(ngx.WARN, "moves: ", err, "; the publish service decides")
        return to_service()
    end
    local conf = settings(red)
    if not conf then
        store.release(red)
        return to_service()
    end
    local args
    if m[3] == "token" then
        args, err = token_args(p, n, player, conf)
    else
        args, err = move_args(p, n, player, conf)
    end
    if not args then
        store.release(red)
        return err
    end
    local res
    res, err = red:evalsha(unpack(args))
    if not res then
        if err and err:find("NOSCRIPT", 1, true) then
            cached.at = -1
            store.release(red)
        else
            red:close()
            ngx.log(ngx.WARN, "moves: redis evalsha: ", err, "; the publish service decides")
        end
        return to_service()
    end
    store.release(red)
    local data = cjson.decode(res)
    if data.refused then
        return refuse(data, n, conf)
    end
    publish.no_store()
    if m[3] == "move" then
        ngx.header["X-Puzzle-Seq"] = tostring(data.seq)
        return ngx.exit(204)
    end
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode({ token = data.token, lock = (data.now_ms + data.lock_ms) / 1000,
                           expires = (data.now_ms + data.token_ms) / 1000 }))
    return ngx.exit(200)
end

return _M
