-- The move contract, pure: what a piece token / move request must carry, the
-- arguments of the publish service's scripts (token.lua, move.lua; their KEYS
-- come from oc.keys) and the answer to each refusal, worded as
-- object_challenge/publish/service.py words it. Both suites run
-- tests/cases/moves.json against these functions and the service.
local cjson = require "cjson.safe"
local errors = require "oc.errors"
local keys = require "oc.keys"

local re_find = ngx.re.find
local tonumber, tostring, type = tonumber, tostring, type
local floor, huge, max = math.floor, math.huge, math.max
local format = string.format

local _M = {}

_M.MAX_MARK = 100
local NUMERIC = [[^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$]]

local ERR_BAD_JSON = "the body is not valid JSON"
local ERR_NOT_OBJECT = 'send a JSON object {"token": "...", "x": 0, "y": 0, "r": 0}'
local ERR_REQUIRED = "%s is required (a number)"
local ERR_NOT_NUMBER = "%s must be a number"
local ERR_NOT_FINITE = "%s must be a finite number"
local ERR_TOKEN_REQUIRED = "token is required: the string GET .../token/ gave you"
local ERR_BAD_MARK = "mark is a free string of at most " .. _M.MAX_MARK .. " characters without '|'"
local ERR_PIECE_NOT_FOUND = "puzzle %s has no piece %s; pieces are numbered from 0 row by row"
local ERR_PUZZLE_COMPLETE = "puzzle %s is complete; no piece moves any more"
local ERR_PIECE_IMMOVABLE = "piece %s is already in place and cannot move"
local ERR_PIECE_IN_PLACE = "piece %s is in place now and cannot move"
local ERR_PIECE_LOCKED = "another player is moving piece %s; try again in a few seconds"
local ERR_TOKEN_INVALID = "the move token is not valid for this piece and player: "
    .. "it was used, expired, or replaced; ask for a new one with GET .../token/"
local ERR_RATE = "%s moves in %s s on this puzzle reached the limit; wait %s s (Retry-After)"

local function bad(code, message)
    return nil, errors.new(400, code, message)
end

local function seconds(ms)
    return tostring(max(1, floor(((ms or 1000) + 500) / 1000)))
end

-- A JSON body (the raw text) as a table, or nil and the 400.
function _M.decode_body(raw)
    if not raw or raw == "" then
        return {}
    end
    local body = cjson.decode(raw)
    if body == nil then
        return bad("bad_json", ERR_BAD_JSON)
    end
    if type(body) ~= "table" or body[1] ~= nil then
        return bad("bad_move", ERR_NOT_OBJECT)
    end
    return body
end

-- body[name] as the script's text ("" when absent and not required), or nil
-- and the 400.
function _M.number(body, name, required)
    local v = body[name]
    if v == nil or v == cjson.null or v == "" then
        if required then
            return bad("bad_move", format(ERR_REQUIRED, name))
        end
        return ""
    end
    if type(v) == "string" and re_find(v, NUMERIC, "jo") then
        v = tonumber(v)
    end
    if type(v) ~= "number" then
        return bad("bad_move", format(ERR_NOT_NUMBER, name))
    end
    if v ~= v or v == huge or v == -huge then
        return bad("bad_move", format(ERR_NOT_FINITE, name))
    end
    return format("%.17g", v)
end

-- EVALSHA arguments of token.lua, or nil and the 400.
function _M.token_args(p, n, player, conf, mark, token)
    mark = mark or ""
    if #mark > _M.MAX_MARK or mark:find("|", 1, true) then
        return bad("bad_mark", ERR_BAD_MARK)
    end
    local k = keys.token_keys(p, n, player)
    return { conf.token_sha, #k, k[1], k[2], k[3], k[4], k[5], k[6],
             n, player, token, mark, conf.lock_ms, conf.token_ms }
end

-- EVALSHA arguments of move.lua for a decoded body, or nil and the 400.
function _M.move_args(p, n, player, conf, body)
    local x, y, r, err
    x, err = _M.number(body, "x", true)
    if not x then return nil, err end
    y, err = _M.number(body, "y", true)
    if not y then return nil, err end
    r, err = _M.number(body, "r", false)
    if not r then return nil, err end
    local token = body.token
    if type(token) ~= "string" or token == "" or token:find("|", 1, true) then
        return bad("bad_move", ERR_TOKEN_REQUIRED)
    end
    local k = keys.move_keys(p, n, player)
    return { conf.move_sha, #k, k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10],
             p, n, token, player, x, y, r, conf.rate_limit, conf.window_ms, conf.ban_ms,
             conf.tolerance, conf.retained, keys.pub_channel(p) }
end

-- The refusal a script's {"refused": why, "retry_ms"} becomes on step
-- "token" or "move"; nil for a reason only the service can handle ("missing":
-- it reloads the board from MongoDB).
function _M.refusal(step, data, p, n, conf)
    local why = data.refused
    if why == "no_piece" then
        return errors.new(404, "piece_not_found", format(ERR_PIECE_NOT_FOUND, p, n))
    elseif why == "complete" and step == "token" then
        return errors.new(400, "puzzle_complete", format(ERR_PUZZLE_COMPLETE, p))
    elseif why == "immovable" and step == "token" then
        return errors.new(400, "piece_immovable", format(ERR_PIECE_IMMOVABLE, n))
    elseif why == "complete" or why == "immovable" then
        return errors.new(409, "piece_immovable", format(ERR_PIECE_IN_PLACE, n))
    elseif why == "locked" then
        return errors.new(409, "piece_locked", format(ERR_PIECE_LOCKED, n),
            { ["Retry-After"] = seconds(data.retry_ms) })
    elseif why == "token" then
        return errors.new(409, "token_invalid", ERR_TOKEN_INVALID)
    elseif why == "banned" then
        local wait = seconds(data.retry_ms)
        return errors.new(429, "move_rate_exceeded", format(ERR_RATE, conf.rate_limit, conf.window_ms / 1000, wait),
            { ["Retry-After"] = wait })
    end
    return nil
end

return _M
