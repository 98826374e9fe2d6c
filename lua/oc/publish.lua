-- What the gateway's puzzle answers (oc.moves, oc.stream) share: the
-- caller's identity and the no-store header. Their Redis keys: oc.keys.
local ngx = ngx

local _M = {}

-- The caller's user id as the access phase decided it: $oc_user_id (the
-- gateway's variable; "" for anonymous callers). Only a conf without that
-- variable sets X-User-Id itself (after stripping the client's).
function _M.user_id()
    local id = ngx.var.oc_user_id
    if id == nil then
        id = ngx.var.http_x_user_id
    end
    if id == "" then
        return nil
    end
    return id
end

-- Cache-Control: no-store, through $oc_cache_control where the conf sends
-- that variable with add_header (else the header itself).
function _M.no_store()
    if ngx.var.oc_cache_control ~= nil then
        ngx.var.oc_cache_control = "no-store"
    else
        ngx.header["Cache-Control"] = "no-store"
    end
end

return _M
