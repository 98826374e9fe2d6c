-- Settings rendered into the nginx conf by nginx/render.py from
-- object_challenge/core/config.py, decoded once in init_by_lua. There are no
-- defaults here: a setting the renderer did not pass is an error, and nginx
-- does not start (init asserts), so Lua can never disagree with config.py.
local cjson = require "cjson.safe"

local concat, pairs, ipairs, tonumber, type = table.concat, pairs, ipairs, tonumber, type

local _M = {}

_M.REQUIRED = {
    "name", "version", "gateway_secret", "body_limit", "snapshot_poll",
    "rate_limits", "user_rps", "user_burst", "ip_rps", "ip_burst",
    "redis", "redis_timeout_ms", "auth_ttl", "auth_neg_ttl", "auth_fallback_ttl",
    "cache_max_body", "index_json", "status_codes", "streams_per_user",
}

local current

-- The settings table, or nil and what is wrong.
function _M.load(json)
    local t, err = cjson.decode(json or "")
    if type(t) ~= "table" then
        return nil, "settings: " .. (err or "not a JSON object")
    end
    local missing = {}
    for _, name in ipairs(_M.REQUIRED) do
        if t[name] == nil then
            missing[#missing + 1] = name
        end
    end
    if #missing > 0 then
        return nil, "settings: missing " .. concat(missing, ", ") .. " (render the conf with nginx/render.py)"
    end
    -- {"413": ["payload_too_large", "..."]}: JSON keys are strings
    local codes = {}
    for status, pair in pairs(t.status_codes) do
        codes[tonumber(status)] = pair
    end
    t.status_codes = codes
    current = t
    return t
end

function _M.get()
    return current
end

return _M
