-- Token -> identity.  L1: a per-worker LRU; L2: the oc_auth shared dict
-- (positive and negative entries); source: HGET oc:gw:tokens sha256(token).
-- Cache keys carry the snapshot version, so a new version (revocation,
-- rotation, new user) is seen as soon as the follower picks it up.
-- No snapshot, or Redis failing: ask the api service (/_internal/auth).
local cjson = require "cjson.safe"
local lrucache = require "resty.lrucache"
local compat = require "oc.compat"
local errors = require "oc.errors"
local keys = require "oc.keys"
local settings = require "oc.settings"
local snapshot = require "oc.snapshot"
local store = require "oc.store"

local ngx = ngx
local re_match = ngx.re.match
local decode_base64 = ngx.decode_base64
local type = type
local find, sub = string.find, string.sub

local _M = {}

local MAX_TOKEN = 256

-- the 401 of every route (errors.py's Unauthorized carries the same realm)
local REALM = 'Token realm="object_challenge"'
local ERR_MISSING = "credentials required; send Authorization: Token <token>"
local ERR_MALFORMED = "malformed credentials; send Authorization: Token <token>"
local ERR_UNKNOWN = "the token is not valid"
local ERR_UNAVAILABLE = "credentials cannot be checked right now; retry shortly"
local last_warning = 0
local l1 = assert(lrucache.new(10000))
local l2 = ngx.shared.oc_auth

snapshot.on_reset(function()
    l1:flush_all()
    l2:flush_all()
end)

-- The token in the Authorization header value(s):
-- token, or nil and "missing" | "malformed".
function _M.credentials(header)
    if header == nil then
        return nil, "missing"
    end
    if type(header) ~= "string" then
        return nil, "malformed" -- the header was sent twice
    end
    -- the common case, "Token <t>", without the regex engine
    if sub(header, 1, 6) == "Token " then
        local token = sub(header, 7)
        if token ~= "" and #token <= MAX_TOKEN and not find(token, "[%s%c]") then
            return token
        end
    end
    local m = re_match(header, [[^\s*(\S+)\s+(\S+)\s*$]], "jo")
    if not m then
        return nil, (header:find("%S") and "malformed" or "missing")
    end
    local scheme, value = m[1]:lower(), m[2]
    local token
    if scheme == "token" then
        token = value
    elseif scheme == "basic" then
        local plain = decode_base64(value)
        if not plain then
            return nil, "malformed"
        end
        -- the token is the user name; the password is ignored (identity.py)
        token = plain:match("^([^:]*):")
        if not token then
            return nil, "malformed"
        end
    else
        return nil, "malformed"
    end
    if token == "" or #token > MAX_TOKEN or find(token, "[%s%c]") then
        return nil, "malformed"
    end
    return token
end

local function normalize(t)
    if type(t) ~= "table" or t.user_id == nil then
        return nil
    end
    local id = tonumber(t.user_id)
    if not id then
        return nil
    end
    local prefix = type(t.worker_prefix) == "string" and t.worker_prefix ~= "" and t.worker_prefix or nil
    return { user_id = id, name = tostring(t.name or ""), role = tostring(t.role or "user"),
             id_header = tostring(id), scope = "u" .. id, worker_prefix = prefix }
end

-- Through the api service: identity, false (refused), or nil, err.
local function ask_api()
    local res = ngx.location.capture("/_oc/auth", { method = ngx.HTTP_GET })
    if res.status == 200 then
        local ident = normalize(cjson.decode(res.body or ""))
        if ident then
            return ident
        end
        return nil, "api auth answered an unreadable identity"
    end
    if res.status == 401 or res.status == 403 then
        return false
    end
    return nil, "api auth answered " .. res.status
end

local function from_l2(key)
    local raw = l2:get(key)
    if raw == nil then
        return nil
    end
    if raw == "" then
        return false
    end
    return normalize(cjson.decode(raw))
end

local function remember(key, ident, ttl)
    l1:set(key, ident, ttl)
    l2:set(key, ident and cjson.encode(ident) or "", ttl)
end

-- The 401 for why = "missing" | "malformed" | "unknown" (err.why says which).
function _M.unauthorized(why)
    local message = why == "unknown" and ERR_UNKNOWN or why == "malformed" and ERR_MALFORMED or ERR_MISSING
    local err = errors.new(401, "unauthorized", message, { ["WWW-Authenticate"] = REALM })
    err.why = why
    return err
end

-- identity, false (unknown token) or nil, err (cannot tell).
local function lookup(token)
    local conf = settings.get()
    local version = snapshot.version()
    local key = keys.token_cache(version or "api", token)
    local ident = l1:get(key)
    if ident ~= nil then
        return ident
    end
    ident = from_l2(key)
    if ident ~= nil then
        -- entries made through the api service must not outlive their 1 s
        l1:set(key, ident, version and conf.auth_neg_ttl or conf.auth_fallback_ttl)
        return ident
    end
    local err
    if version then
        local raw
        raw, err = store.call("hget", keys.tokens, compat.sha256_hex(token))
        if raw == false then
            remember(key, false, conf.auth_neg_ttl)
            return false
        elseif raw then
            ident = normalize(cjson.decode(raw))
            if ident then
                remember(key, ident, conf.auth_ttl)
                return ident
            end
            err = "unreadable identity in " .. keys.tokens
        end
        if ngx.now() - last_warning > 1 then -- once a second, not once a request
            last_warning = ngx.now()
            ngx.log(ngx.WARN, "token lookup in redis failed (", err, "); asking the api service")
        end
        key = keys.token_cache("api", token)
    end
    ident, err = ask_api()
    if ident == nil then
        return nil, err
    end
    remember(key, ident, conf.auth_fallback_ttl)
    return ident
end

-- The caller's identity from the Authorization header value(s), or nil and
-- a refusal: a 401 (err.why "missing" lets a route serve anonymous callers)
-- or a 503 when the token cannot be checked.
function _M.identify(header)
    local token, why = _M.credentials(header)
    if not token then
        return nil, _M.unauthorized(why)
    end
    local ident, err = lookup(token)
    if ident == nil then
        ngx.log(ngx.ERR, "authentication unavailable: ", err)
        return nil, errors.new(503, "auth_unavailable", ERR_UNAVAILABLE)
    end
    if not ident then
        return nil, _M.unauthorized("unknown")
    end
    return ident
end

return _M
