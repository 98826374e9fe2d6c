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

-- {"puzzle", "piece", "player"} -> every Redis key oc.keys builds for them
function _M.keys()
    local keys = require "oc.keys"
    local c = cases()
    answer({ tokens = keys.tokens, rules = keys.rules, version = keys.version,
             scripts = keys.pub_scripts, dirty = keys.pub_dirty, stats = keys.pub_stats,
             meta = keys.pub_meta(c.puzzle), channel = keys.pub_channel(c.puzzle),
             token_keys = keys.token_keys(c.puzzle, c.piece, c.player),
             move_keys = keys.move_keys(c.puzzle, c.piece, c.player) })
end

-- the rendered settings (JSON text) -> {"ok"} or {"error"}
-- {"job"} -> the job queue's keys oc.keys builds (oc.job_events reads them)
function _M.job_keys()
    local keys = require "oc.keys"
    local c = cases()
    answer({ job = keys.jobs_job(c.job), channel = keys.jobs_events_channel(c.job) })
end

function _M.settings()
    local settings = require "oc.settings"
    ngx.req.read_body()
    local ok, err = settings.load(ngx.req.get_body_data())
    answer({ ok = ok ~= nil, error = err })
end

-- [status, ...] -> [the body oc.errors renders for a bare refusal of it, ...]
-- (POST /settings first)
function _M.statuses()
    local errors = require "oc.errors"
    local out = {}
    for i, status in ipairs(cases()) do
        out[i] = cjson.decode(errors.render(errors.new(status), "rid"))
    end
    answer(out)
end

-- {"example", "conf", "refusals": [{"step", "why", "retry_ms"}]} ->
-- [{"status", "code", "message", "headers"} or "service", ...]
function _M.refusals()
    local contract = require "oc.move_contract"
    local c = cases()
    local e = c.example
    local out = {}
    for i, r in ipairs(c.refusals) do
        local data = { refused = r.why, retry_ms = r.retry_ms ~= cjson.null and r.retry_ms or nil }
        local err = contract.refusal(r.step, data, tostring(e.puzzle), tostring(e.piece), c.conf)
        out[i] = err and { status = err.status, code = err.code, message = err.message,
                           headers = err.headers or {} } or "service"
    end
    answer(out)
end

-- {"example", "move"}: the KEYS the token and move EVALSHAs send
function _M.script_keys()
    local contract = require "oc.move_contract"
    local c = cases()
    local e = c.example
    local conf = { token_sha = "t", move_sha = "m" }
    local p, n = tostring(e.puzzle), tostring(e.piece)
    local function keys_of(args)
        local out = {}
        for i = 1, args[2] do
            out[i] = args[2 + i]
        end
        return out
    end
    answer({ token = keys_of(assert(contract.token_args(p, n, e.player, conf, "", "tok"))),
             move = keys_of(assert(contract.move_args(p, n, e.player, conf, c.move))) })
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
