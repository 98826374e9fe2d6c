-- GET /newapi/puzzle/<id>/piece/<n>/token/ and PATCH .../move/, answered by
-- the gateway itself with the publish service's own Redis scripts
-- (object_challenge/publish/scripts/token.lua, move.lua): the service publishes their
-- SHA1s and settings in oc:pub:scripts, so both paths run the same decision
-- (the contract: oc.move_contract). Validation order as in
-- publish/views.py: 401 (oc.gateway) -> 403 -> 400 -> 409.
-- Whatever the gateway cannot decide goes to the service: no scripts
-- published yet, NOSCRIPT, Redis errors, odd URLs and methods, and a puzzle
-- Redis does not hold (the service reloads it from MongoDB). A completed
-- puzzle is written back by the scheduler within a second.
local cjson = require "cjson.safe"
local contract = require "oc.move_contract"
local keys = require "oc.keys"
local service_scripts = require "oc.service_scripts"
local store = require "oc.store"

local ngx = ngx
local re_match = ngx.re.match
local tonumber, tostring, unpack = tonumber, tostring, unpack

local random = require("oc.compat").random

local _M = {}

local NUMBERS = { "lock_ms", "token_ms", "rate_limit", "window_ms", "ban_ms", "tolerance", "retained" }
local ROUTE = [[^/newapi/puzzle/(\d{1,12})/piece/(\d{1,9})/(token|move)/$]]

local scripts = service_scripts.new(keys.pub_scripts, NUMBERS, "moves")

local function new_token()
    local bytes = random.bytes(18, true) or random.bytes(18)
    return (ngx.encode_base64(bytes):gsub("+", "-"):gsub("/", "_"):gsub("=", ""))
end

-- The move's body: JSON, or a form (curl -d sends JSON labelled as a form:
-- a body that starts with "{" is JSON).
local function request_body()
    ngx.req.read_body()
    local raw = ngx.req.get_body_data()
    local ctype = ngx.var.content_type or ""
    if ctype:find("^application/x%-www%-form%-urlencoded") and not (raw and raw:find("^%s*{")) then
        return ngx.req.get_post_args(20)
    end
    return contract.decode_body(raw)
end

local function script_args(step, p, n, player, conf)
    if step == "token" then
        local mark = ngx.var.arg_mark
        return contract.token_args(p, n, player, conf, mark and ngx.unescape_uri(mark) or "", new_token())
    end
    local body, err = request_body()
    if not body then
        return nil, err
    end
    return contract.move_args(p, n, player, conf, body)
end

-- The answer {status, body, headers} for an authenticated player, nil and a
-- refusal, or false: the publish service decides.
function _M.answer(player)
    local m = re_match(ngx.var.uri, ROUTE, "jo")
    local method = ngx.req.get_method()
    if not m or (m[3] == "token" and method ~= "GET") or (m[3] == "move" and method ~= "PATCH") then
        return false -- its 404 / 405 / redirect
    end
    local p, n, step = tostring(tonumber(m[1])), tostring(tonumber(m[2])), m[3]
    local red, err = store.connect()
    if not red then
        ngx.log(ngx.WARN, "moves: ", err, "; the publish service decides")
        return false
    end
    local conf = scripts:settings(red)
    if not conf then
        store.release(red)
        return false
    end
    local args
    args, err = script_args(step, p, n, player, conf)
    if not args then
        store.release(red)
        return nil, err
    end
    local data = scripts:eval(red, unpack(args))
    if not data then
        return false
    end
    if data.refused then
        local refusal = contract.refusal(step, data, p, n, conf)
        if not refusal then
            return false -- "missing", or a reason this module does not know
        end
        return nil, refusal
    end
    if step == "move" then
        return { status = 204, headers = { ["X-Puzzle-Seq"] = tostring(data.seq) } }
    end
    return { status = 200, headers = { ["Content-Type"] = "application/json" },
             body = cjson.encode({ token = data.token, lock = (data.now_ms + data.lock_ms) / 1000,
                                   expires = (data.now_ms + data.token_ms) / 1000 }) .. "\n" }
end

return _M
