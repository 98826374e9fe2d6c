-- Settings rendered into the nginx conf by nginx/render.py (from
-- object_challenge/config.py), decoded once in init_by_lua.
local cjson = require "cjson.safe"

local _M = {}

local defaults = {
    name = "object_challenge",
    version = "0",
    gateway_secret = "",
    body_limit = 65536,
    snapshot_poll = 0.5,
    rate_limits = true,
    user_rps = 50, user_burst = 100,
    ip_rps = 20, ip_burst = 50,
    redis = { host = "127.0.0.1", port = 6379, db = 0, password = nil },
    redis_timeout_ms = 200,
    auth_ttl = 60, auth_neg_ttl = 5, auth_fallback_ttl = 1,
    cache_max_body = 512 * 1024,
    index_json = '{"name":"object_challenge","links":{}}',
}

local current = defaults

function _M.load(json)
    local t, err = cjson.decode(json or "{}")
    if not t then
        return nil, "settings: " .. err
    end
    for k, v in pairs(defaults) do
        if t[k] == nil then
            t[k] = v
        end
    end
    current = t
    return t
end

function _M.get()
    return current
end

return _M
