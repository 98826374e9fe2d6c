-- Preparing a request for its upstream: the caller's forged identity
-- headers out, the gateway's identity variables in.  Only for requests that
-- go upstream: refusals and cache HITs need none of it.
local settings = require "oc.settings"

local ngx = ngx
local req = ngx.req
local escape_uri = ngx.escape_uri
local pairs, byte, find, type = pairs, string.byte, string.find, type

local _M = {}

-- Only the gateway speaks for the caller: x-user-*, x-consumer-*, x-gateway-*
-- from the client are removed.
local function strip_forged(headers)
    for name in pairs(headers) do
        if byte(name, 1) == 120 and byte(name, 2) == 45 -- "x-"
            and (find(name, "^x%-user%-") or find(name, "^x%-consumer%-")
                 or find(name, "^x%-gateway%-")) then
            req.clear_header(name)
        end
    end
end

-- true, or nil and "malformed" (two Authorization headers).
function _M.prepare(ident)
    local headers = req.get_headers(100)
    if type(headers["authorization"]) == "table" then
        return nil, "malformed"
    end
    strip_forged(headers)
    -- X-Request-Id, X-Gateway-Secret and X-User-* are proxy_set_header from
    -- these variables (an empty one sends no header)
    local var = ngx.var
    var.oc_gateway_secret = settings.get().gateway_secret
    if ident then -- $oc_user_id is already set (oc.gateway identify)
        -- percent-encoded (UTF-8 bytes, RFC 3986 unreserved kept): no value can
        -- break a header line; identity.py decodes them
        var.oc_user_name = escape_uri(ident.name)
        var.oc_user_role = escape_uri(ident.role)
    end
    return true
end

return _M
