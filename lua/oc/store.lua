-- Redis connections for the gateway: short timeouts, pooled, db and
-- password applied once per new connection.
local compat = require "oc.compat"
local settings = require "oc.settings"

local _M = {}

function _M.connect()
    local conf = settings.get()
    local r = conf.redis
    local red = compat.redis:new()
    red:set_timeout(conf.redis_timeout_ms)
    local ok, err = red:connect(r.host, r.port)
    if not ok then
        return nil, "redis connect: " .. err
    end
    if red:get_reused_times() == 0 then
        if type(r.password) == "string" and r.password ~= "" then
            ok, err = red:auth(r.password)
            if not ok then
                return nil, "redis auth: " .. err
            end
        end
        if type(r.db) == "number" and r.db ~= 0 then
            ok, err = red:select(r.db)
            if not ok then
                return nil, "redis select: " .. err
            end
        end
    end
    return red
end

function _M.release(red)
    red:set_keepalive(30000, 32)
end

-- One command on a pooled connection: value or nil, err.
-- ngx.null (key absent) is returned as false.
function _M.call(cmd, ...)
    local red, err = _M.connect()
    if not red then
        return nil, err
    end
    local res
    res, err = red[cmd](red, ...)
    if res == nil then
        red:close()
        return nil, "redis " .. cmd .. ": " .. tostring(err)
    end
    _M.release(red)
    if res == ngx.null then
        return false
    end
    return res
end

return _M
