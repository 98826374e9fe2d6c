-- The phase handlers the nginx conf calls (one line each there).
-- Access order: request id, forged headers out, credentials -> identity,
-- limits, 401, identity headers in, then the route's own decision
-- (bucket admission, cache lookup, purge).
local cjson = require "cjson.safe"
local auth = require "oc.auth"
local bucket = require "oc.bucket"
local cache = require "oc.cache"
local errors = require "oc.errors"
local job_events = require "oc.job_events"
local limits = require "oc.limits"
local request = require "oc.request"
local settings = require "oc.settings"
local snapshot = require "oc.snapshot"
local upstream = require "oc.upstream"

local ngx = ngx
local req = ngx.req
local sub, find = string.sub, string.find
local re_find = ngx.re.find

local _M = {}

function _M.init(json)
    assert(settings.load(json))
end

function _M.init_worker()
    snapshot.start()
end

local function identify()
    request.assign()
    local token, why = auth.credentials(ngx.var.http_authorization)
    if not token then
        return nil, why
    end
    local ident, err = auth.lookup(token)
    if ident == nil then
        ngx.log(ngx.ERR, "authentication unavailable: ", err)
        return errors.exit(503, "auth_unavailable",
            "credentials cannot be checked right now; retry shortly")
    end
    if ident then
        ngx.var.oc_user_id = ident.id_header -- the access log, and X-User-Id upstream
    end
    return ident or nil, ident == false and "unknown" or nil
end

local function unauthorized(why)
    local msg = why == "unknown" and "the token is not valid"
        or why == "malformed" and "malformed credentials; send Authorization: Token <token>"
        or "credentials required; send Authorization: Token <token>"
    return errors.exit(401, "unauthorized", msg, nil,
        { ["WWW-Authenticate"] = 'Token realm="object_challenge"' })
end

-- Only for requests that go upstream (a cache HIT needs none of this).
local function forward(ident)
    local ok, why = upstream.prepare(ident)
    if not ok then
        return unauthorized(why)
    end
end

local function purge(ident, path)
    if not ident then
        return unauthorized("missing")
    end
    if ident.role ~= "admin" then
        return errors.exit(403, "forbidden", "purging the cache needs the admin role")
    end
    cache.purge(path)
    ngx.var.oc_cache_control = "no-store"
    ngx.say(cjson.encode({ purged = path, request_id = request.id() }))
    return ngx.exit(200)
end

local NO_CACHE = [[^/newapi/puzzle/.*/(token|move|updates)/?$]]

-- route: "bucket" | "api" | "jobs" | "publish" | "purge"
function _M.access(route)
    local method = req.get_method()
    if route == "bucket" and method ~= "POST" then
        request.assign()
        return errors.exit(405, "method_not_allowed", "use POST /bucket", nil, { Allow = "POST" })
    end
    local ident, why = identify()
    limits.enforce(ident)
    -- no credentials: anonymous on /newapi (the service decides), 401 on /bucket
    if (why and why ~= "missing") or (route == "bucket" and not ident) then
        return unauthorized(why)
    end
    if method == "PURGE" then
        return purge(ident, ngx.var.uri)
    end
    if route == "purge" then
        if method ~= "DELETE" then
            return errors.exit(405, "method_not_allowed",
                "use DELETE /newapi/_cache/<path> or PURGE <path>", nil, { Allow = "DELETE" })
        end
        local path = sub(ngx.var.uri, #"/newapi/_cache" + 1)
        if not find(path, "^/newapi") then
            path = "/newapi" .. path
        end
        return purge(ident, path)
    end
    local cacheable = route ~= "jobs" and route ~= "bucket" and method == "GET"
        and not (route == "publish" and re_find(ngx.var.uri, NO_CACHE, "jo"))
    if cacheable then
        local entry, how = cache.lookup(ident)
        if entry then
            return cache.serve(entry, how)
        end
    end
    if route == "bucket" then
        -- refusals first: they need none of the upstream preparation
        local decision = bucket.decide(ident)
        forward(ident)
        if decision == "ask_api" then
            return ngx.exec("@bucket_api")
        end
        -- allowed: proxied to storage; the creator's bucket list is stale
        -- once it has answered
        ngx.ctx.purge = "/newapi/buckets"
        return
    end
    forward(ident)
    if not cacheable then
        if route ~= "jobs" and method ~= "GET" and method ~= "HEAD" and method ~= "OPTIONS" then
            ngx.ctx.purge = ngx.var.uri -- a write: purged once it has been answered
        end
        ngx.var.oc_cache_status = "BYPASS"
    end
end

-- A cache HIT or UPDATING answer was made in Lua: nothing to do (and no
-- ngx.ctx to create).
local function served_from_cache()
    local status = ngx.var.oc_cache_status
    return status == "HIT" or status == "UPDATING"
end

function _M.header_filter()
    if served_from_cache() then
        return
    end
    local ctx = ngx.ctx
    if ctx.cache then
        cache.header_filter(ctx)
    elseif ctx.purge then
        cache.purge(ctx.purge)
    end
end

function _M.body_filter()
    if served_from_cache() then
        return
    end
    local ctx = ngx.ctx
    if ctx.cache then
        cache.body_filter(ctx)
    end
end

-- GET /newapi/puzzle/<id>/updates/: the SSE stream (oc.stream, owned by
-- the publish service's engineer) unless ?since= asks for catch-up.
function _M.updates()
    if ngx.var.arg_since then
        return ngx.exec("@publish_plain")
    end
    local ok, stream = pcall(require, "oc.stream")
    if not ok then
        return ngx.exec("@publish_stream")
    end
    return stream.serve()
end

-- GET /newapi/jobs/<id>/events/stream: oc.job_events (live, Redis pub/sub);
-- auth and the catch-up are the jobs service's answers, through /_oc/jobs/.
function _M.job_events()
    local id, err = job_events.job_id(ngx.var.uri)
    if not id then
        return errors.exit(err.status, err.code, err.message)
    end
    local after = ngx.var.http_last_event_id or ngx.var.arg_after or ""
    local s
    s, err = job_events.open(id, after, job_events.caller())
    if not s then
        if err.body then -- the service's own answer (401, 404, 400, 5xx)
            ngx.status = err.status
            ngx.var.oc_cache_control = "no-store"
            local www = err.headers and err.headers["WWW-Authenticate"]
            if www then
                ngx.header["WWW-Authenticate"] = www
            end
            ngx.print(err.body)
            return ngx.exit(ngx.HTTP_OK)
        end
        return errors.exit(err.status, err.code, err.message)
    end
    if not ngx.on_abort(function() ngx.exit(499) end) then
        ngx.log(ngx.WARN, "job events: lua_check_client_abort is off; a gone client is noticed on the next write")
    end
    ngx.status = 200
    ngx.header["Content-Type"] = "text/event-stream"
    ngx.header["X-Accel-Buffering"] = "no"
    ngx.var.oc_cache_control = "no-store"
    job_events.relay(s)
    return ngx.exit(ngx.OK)
end

-- Rewrite phase of /_oc/jobs/ (the stream's catch-up subrequests).
function _M.job_events_caller()
    job_events.restore_caller(settings.get().gateway_secret)
end

function _M.index()
    if req.get_method() ~= "GET" and req.get_method() ~= "HEAD" then
        return errors.exit(405, "method_not_allowed", "GET / only", nil, { Allow = "GET" })
    end
    request.assign()
    ngx.say(settings.get().index_json)
end

-- Anything not routed (internal paths included): 404, or a purge.
function _M.not_found()
    if req.get_method() == "PURGE" then
        return _M.access("purge_any")
    end
    request.assign()
    return errors.exit(404, "not_found", "no such route; see GET / for the index")
end

return _M
