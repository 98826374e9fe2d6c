-- The one error shape of every answer the gateway makes itself:
-- {"error": code, "message": ..., "request_id": ...} plus contract fields.
-- Modules return refusals as tables (new); the phase handlers in
-- oc.gateway send each (send: rendered once, by render) and end the request. The default
-- code and message of a status come from the services' own table
-- (object_challenge/core/errors.py STATUS_CODES, passed in by nginx/render.py).
local cjson = require "cjson.safe"
local request = require "oc.request"
local settings = require "oc.settings"

local ngx = ngx

local pairs = pairs
local find, gsub = string.find, string.gsub

local _M = {}

-- A refusal: status, code and message (nil: the status's defaults), headers
-- to send with it, extra fields for the body.
function _M.new(status, code, message, headers, extra)
    return { status = status, code = code, message = message, headers = headers, extra = extra }
end

-- The default code and message of a status.
function _M.default(status)
    local pair = settings.get().status_codes[status]
    if pair then
        return pair[1], pair[2]
    end
    return "error", "error"
end

-- The JSON body of a refusal.
function _M.render(err, request_id)
    local code, message = _M.default(err.status)
    local t = { error = err.code or code, message = err.message or message, request_id = request_id }
    if err.extra then
        for k, v in pairs(err.extra) do
            t[k] = v
        end
    end
    local json = cjson.encode(t)
    -- cjson escapes "/" as "\/"; paths in messages read better without
    if find(json, "\\/", 1, true) then
        json = gsub(json, "\\/", "/")
    end
    return json
end

-- Send a refusal and end the request (any phase before content is sent);
-- only oc.gateway's phase handlers call it.
function _M.send(err)
    ngx.status = err.status
    local id = request.assign() -- X-Request-Id comes from $oc_request_id (add_header)
    ngx.var.oc_cache_control = "no-store"
    -- Content-Type: the conf's default_type is application/json
    if err.headers then
        local h = ngx.header
        for k, v in pairs(err.headers) do
            h[k] = v
        end
    end
    ngx.say(_M.render(err, id))
    -- the status is already on the wire; HTTP_OK just ends the request
    return ngx.exit(ngx.HTTP_OK)
end

return _M
