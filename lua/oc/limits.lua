-- Request limits per user (and per client IP for unauthenticated traffic):
-- GCRA, i.e. a token bucket of `burst` requests refilled at `rps`, kept as
-- one number (the theoretical arrival time) per key in the oc_limits dict.
-- Two workers racing on one key may each admit a request; the limit is a
-- guard against floods, not an accounting.
local errors = require "oc.errors"
local keys = require "oc.keys"
local settings = require "oc.settings"

local ngx = ngx
local ceil, floor, max = math.ceil, math.floor, math.max

local _M = {}

local dict = ngx.shared.oc_limits

-- true, remaining  or  nil, retry_after (seconds), then reset (seconds).
function _M.take(scope, id, rps, burst)
    local key = keys.limit(scope, id)
    local now = ngx.now()
    local interval = 1 / rps
    local tolerance = burst * interval
    local tat = dict:get(key) or now
    if tat < now then
        tat = now
    end
    local new_tat = tat + interval
    local ahead = new_tat - now
    if ahead > tolerance + 1e-6 then
        return nil, ahead - tolerance, ahead - interval
    end
    dict:set(key, new_tat, ceil(ahead) + 1)
    return true, max(0, floor((tolerance - ahead) / interval + 1e-6))
end

-- The 429 headers for a refused request.
function _M.headers(burst, retry_after, reset)
    return {
        ["Retry-After"] = tostring(max(1, ceil(retry_after))),
        ["RateLimit-Limit"] = tostring(burst),
        ["RateLimit-Remaining"] = "0",
        ["RateLimit-Reset"] = tostring(max(1, ceil(reset))),
    }
end

local ERR_TOO_MANY = "too many requests; retry after Retry-After seconds"

-- The access-phase check: per user when authenticated, else per client IP.
-- true, or nil and the 429 to send.
function _M.admit(ident, addr)
    local conf = settings.get()
    if not conf.rate_limits then
        return true
    end
    local ok, retry, reset, burst
    if ident then
        burst = conf.user_burst
        ok, retry, reset = _M.take("u", ident.user_id, conf.user_rps, burst)
    else
        burst = conf.ip_burst
        ok, retry, reset = _M.take("ip", addr, conf.ip_rps, burst)
    end
    if not ok then
        return nil, errors.new(429, "too_many_requests", ERR_TOO_MANY, _M.headers(burst, retry, reset))
    end
    return true
end

return _M
