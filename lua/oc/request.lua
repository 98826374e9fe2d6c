-- The request id: the client's if sane ([A-Za-z0-9._-]{1,128}), else nginx's.
local ngx = ngx
local re_find = ngx.re.find

local _M = {}

function _M.id()
    local ctx = ngx.ctx
    local id = ctx.request_id
    if id then
        return id
    end
    id = ngx.var.http_x_request_id
    if not id or not re_find(id, [[^[A-Za-z0-9._-]{1,128}$]], "jo") then
        id = ngx.var.request_id
    end
    ctx.request_id = id
    return id
end

-- Fix the id for this request's answer (and so the access log); the
-- gateway also sends it upstream when the request goes there.
function _M.assign()
    local id = _M.id()
    ngx.header["X-Request-Id"] = id
    return id
end

return _M
