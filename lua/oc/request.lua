-- The request id: the client's if sane ([A-Za-z0-9._-]{1,128}), else a new
-- one (a random per-worker prefix and a counter: nginx's $request_id costs a
-- RAND_bytes call, about 2 us, per request).
-- The id lives in $oc_request_id: the conf sends it upstream
-- (proxy_set_header), on every answer (add_header ... always) and to the
-- access log, so Lua never sets a header for it.
local bit = require "bit"

local ngx = ngx
local re_find = ngx.re.find
local tohex = bit.tohex

local _M = {}

local prefix
local counter = 0

local function new_id()
    if not prefix then
        math.randomseed(ngx.now() * 1000 + ngx.worker.pid())
        prefix = tohex(math.random(0, 0x7fffffff), 8) .. tohex(math.random(0, 0x7fffffff), 8)
            .. tohex(ngx.worker.pid(), 8)
    end
    counter = counter + 1
    return prefix .. tohex(counter, 8)
end

-- The id is memoised in $oc_request_id itself (no ngx.ctx: a cache HIT
-- never creates one).
function _M.id()
    local var = ngx.var
    local id = var.oc_request_id
    if id and id ~= "" then
        return id
    end
    id = var.http_x_request_id
    if not id or not re_find(id, [[^[A-Za-z0-9._-]{1,128}$]], "jo") then
        id = new_id()
    end
    var.oc_request_id = id
    return id
end

-- Fix the id for this request (answer, upstream, access log).
_M.assign = _M.id

return _M
