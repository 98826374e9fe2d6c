-- A service's own Redis scripts, run by the gateway (oc.moves: the publish
-- service's token/move; oc.job_lease: the jobs service's poll/complete). The
-- service publishes their SHA1s and settings in a Redis hash; a nginx worker
-- keeps it for a second. `eval` answers nil whenever the service must decide
-- instead: NOSCRIPT (the settings are read again next time) or a Redis error.
local cjson = require "cjson.safe"
local store = require "oc.store"

local ngx = ngx
local ipairs, setmetatable, tonumber = ipairs, setmetatable, tonumber

local _M = {}
local mt = { __index = _M }

local TTL = 1 -- s a worker keeps a service's settings

-- key: the hash; numbers: its fields read as numbers; what: the log's name
function _M.new(key, numbers, what)
    return setmetatable({ key = key, numbers = numbers, what = what, at = -1, conf = false }, mt)
end

-- The published hash as a table (cached TTL), false when the service has not
-- published it, or nil, err.
function _M.settings(self, red)
    local now = ngx.now()
    if now - self.at < TTL then
        return self.conf
    end
    local res, err = red:hgetall(self.key)
    if not res then
        return nil, err
    end
    local conf = false
    if #res > 0 then
        conf = red:array_to_hash(res)
        for _, name in ipairs(self.numbers) do
            conf[name] = tonumber(conf[name])
        end
    end
    self.at, self.conf = now, conf
    return conf
end

-- EVALSHA: the script's answer (JSON, decoded) with the connection given back,
-- or nil (the connection released or closed): the service decides.
function _M.eval(self, red, ...)
    local res, err = red:evalsha(...)
    if not res then
        if err and err:find("NOSCRIPT", 1, true) then
            self.at = -1
            store.release(red)
        else
            red:close()
            ngx.log(ngx.WARN, self.what, ": redis evalsha: ", err, "; the service decides")
        end
        return nil
    end
    store.release(red)
    return cjson.decode(res)
end

-- tests: forget the cached settings
function _M.forget(self)
    self.at, self.conf = -1, false
end

return _M
