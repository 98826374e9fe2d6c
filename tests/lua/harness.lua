-- Runs the gateway's pure modules on case tables POSTed as JSON, inside a
-- real nginx (tests/gateway/test_lua_cases.py), and answers the results.
local cjson = require "cjson"

local _M = {}

local function cases()
    ngx.req.read_body()
    return cjson.decode(ngx.req.get_body_data())
end

local function answer(t)
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(t))
end

-- [{"user", "grants", "name"}] -> [allowed, ...]
function _M.rules()
    local rules = require "oc.rules"
    local out = {}
    for i, c in ipairs(cases()) do
        local compiled = assert(rules.compile({ prefixes = c.prefixes, grants = c.grants }))
        out[i] = rules.admit(compiled, c.user, c.name)
    end
    answer(out)
end

-- [{"name"}] -> [valid, ...]
function _M.names()
    local names = require "oc.names"
    local out = {}
    for i, c in ipairs(cases()) do
        out[i] = names.check(c.name) == true
    end
    answer(out)
end

-- [header value or list] -> [token or "!" .. reason, ...]
function _M.credentials()
    local auth = require "oc.auth"
    local out = {}
    for i, h in ipairs(cases()) do
        local token, why = auth.credentials(h ~= cjson.null and h or nil)
        out[i] = token or ("!" .. why)
    end
    answer(out)
end

function _M.keys()
    local keys = require "oc.keys"
    answer({ tokens = keys.tokens, rules = keys.rules, version = keys.version })
end

-- {"rps", "burst", "n"}: n requests at once -> how many were admitted
function _M.limits()
    local limits = require "oc.limits"
    local c = cases()
    local admitted = 0
    local id = tostring(ngx.now()) .. math.random()
    for _ = 1, c.n do
        if limits.take("test", id, c.rps, c.burst) then
            admitted = admitted + 1
        end
    end
    answer({ admitted = admitted })
end

return _M
