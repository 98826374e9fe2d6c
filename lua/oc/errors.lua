-- Every answer the gateway makes itself is rendered here, as
-- {"error": code, "message": ..., "request_id": ...} plus contract fields.
local cjson = require "cjson.safe"
local request = require "oc.request"

local ngx = ngx
local pairs = pairs
local find, gsub = string.find, string.gsub

local _M = {}

-- status -> default code and message for errors nginx itself raises
local by_status = {
    [400] = { "bad_request", "the request could not be parsed" },
    [401] = { "unauthorized", "send Authorization: Token <token>" },
    [403] = { "forbidden", "this identity may not do that" },
    [404] = { "not_found", "no such route; see GET / for the index" },
    [405] = { "method_not_allowed", "this route does not take that method" },
    [408] = { "request_timeout", "the request was not sent in time" },
    [413] = { "payload_too_large", "the request body is over the size limit" },
    [414] = { "uri_too_long", "the request URI is too long" },
    [429] = { "too_many_requests", "too many requests; retry after Retry-After seconds" },
    [431] = { "headers_too_large", "the request headers are too large" },
    [500] = { "internal_error", "the gateway failed; the request id is in the log" },
    [502] = { "bad_gateway", "the service behind this route is not answering; retry shortly" },
    [503] = { "service_unavailable", "the service behind this route is unavailable; retry shortly" },
    [504] = { "gateway_timeout", "the service behind this route did not answer in time" },
}

function _M.body(status, code, message, extra)
    local d = by_status[status]
    local t = {
        error = code or (d and d[1]) or "error",
        message = message or (d and d[2]) or "error",
        request_id = request.id(),
    }
    if extra then
        for k, v in pairs(extra) do
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

-- Send the error and end the request (any phase before content is sent).
function _M.exit(status, code, message, extra, headers)
    ngx.status = status
    request.assign() -- X-Request-Id comes from $oc_request_id (add_header)
    local var = ngx.var
    var.oc_cache_control = "no-store"
    -- Content-Type: the conf's default_type is application/json
    if headers then
        local h = ngx.header
        for k, v in pairs(headers) do
            h[k] = v
        end
    end
    ngx.say(_M.body(status, code, message, extra))
    -- the status is already on the wire; HTTP_OK just ends the request
    return ngx.exit(ngx.HTTP_OK)
end

-- error_page target: nginx (or an upstream failure) chose the status.
function _M.from_status()
    local status = ngx.status
    if not status or status < 400 then
        status = 500
    end
    return _M.exit(status, nil, nil, nil, { ["Content-Type"] = "application/json" })
end

return _M
