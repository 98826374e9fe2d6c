-- The phase handlers the nginx conf calls (one line each there), and the
-- only place that ends a request: modules return values or nil and a
-- refusal (oc.errors.new), rendered here once.
-- Access order: request id, credentials -> identity, limits, 401, identity
-- headers in, then the route's own decision (bucket admission, cache
-- lookup, purge).
local cjson = require "cjson.safe"
local auth = require "oc.auth"
local bucket = require "oc.bucket"
local cache = require "oc.cache"
local errors = require "oc.errors"
local job_events = require "oc.job_events"
local limits = require "oc.limits"
local moves = require "oc.moves"
local publish = require "oc.publish"
local request = require "oc.request"
local settings = require "oc.settings"
local snapshot = require "oc.snapshot"
local stream = require "oc.stream"
local upstream = require "oc.upstream"

local ngx = ngx
local req = ngx.req
local pairs = pairs

local _M = {}

local ERR_NOT_FOUND = "no such route; see GET / for the index"
local ERR_PURGE_ADMIN = "purging the cache needs the admin role"
local ERR_BUCKET_METHOD = "use POST /bucket"
local ERR_PURGE_METHOD = "use DELETE /newapi/_cache/<path> or PURGE <path>"
local ERR_INDEX_METHOD = "GET / only"

local refuse = errors.send

-- Send an answer made in Lua: {status, headers, body}.
local function answer(a)
    ngx.status = a.status
    for k, v in pairs(a.headers or {}) do
        ngx.header[k] = v
    end
    if not a.body then
        return ngx.exit(a.status)
    end
    ngx.print(a.body)
    return ngx.exit(ngx.HTTP_OK) -- the status is on the wire already
end

-- Server-Sent Events: the headers, then relay(...) until the client or
-- Redis goes away (a gone client ends the request at once).
local function sse(what, relay, ...)
    if not ngx.on_abort(function() ngx.exit(499) end) then
        ngx.log(ngx.WARN, what, ": lua_check_client_abort is off; a gone client is noticed on the next write")
    end
    ngx.status = 200
    local h = ngx.header
    h["Content-Type"] = "text/event-stream"
    h["X-Accel-Buffering"] = "no"
    ngx.var.oc_cache_control = "no-store"
    relay(...)
    return ngx.exit(ngx.OK)
end

function _M.init(json)
    assert(settings.load(json))
end

function _M.init_worker()
    snapshot.start()
end

local function purge(ident, path)
    if not ident then
        return refuse(auth.unauthorized("missing"))
    end
    if ident.role ~= "admin" then
        return refuse(errors.new(403, "forbidden", ERR_PURGE_ADMIN))
    end
    cache.purge(path)
    ngx.var.oc_cache_control = "no-store"
    return answer({ status = 200, body = cjson.encode({ purged = path, request_id = request.id() }) .. "\n" })
end

-- The route's upstream gets the gateway's identity headers (nil, err: two
-- Authorization headers).
local function forward(ident)
    local ok, why = upstream.prepare(ident)
    if not ok then
        return refuse(auth.unauthorized(why))
    end
end

-- route: "bucket" | "api" | "jobs" | "publish" | "purge"
function _M.access(route)
    local method = req.get_method()
    if route == "bucket" and method ~= "POST" then
        return refuse(errors.new(405, "method_not_allowed", ERR_BUCKET_METHOD, { Allow = "POST" }))
    end
    request.assign()
    local ident, err = auth.identify(ngx.var.http_authorization)
    if err and err.status ~= 401 then
        return refuse(err)
    end
    if ident then
        ngx.var.oc_user_id = ident.id_header -- the access log, and X-User-Id upstream
    end
    local ok, over = limits.admit(ident, ngx.var.remote_addr)
    if not ok then
        return refuse(over)
    end
    -- no credentials: anonymous on /newapi (the service decides), 401 on /bucket
    if err and (err.why ~= "missing" or route == "bucket") then
        return refuse(err)
    end
    if method == "PURGE" then
        return purge(ident, ngx.var.uri)
    end
    if route == "purge" then
        if method ~= "DELETE" then
            return refuse(errors.new(405, "method_not_allowed", ERR_PURGE_METHOD, { Allow = "DELETE" }))
        end
        return purge(ident, cache.purge_target(ngx.var.uri))
    end
    local cacheable = cache.cacheable(route, method, ngx.var.uri)
    if cacheable then
        local entry, how = cache.lookup(ident)
        if entry then
            ngx.status = 200
            ngx.print(cache.serve(entry, how))
            return ngx.exit(200)
        end
    end
    if route == "bucket" then
        -- refusals first: they need none of the upstream preparation
        req.read_body()
        local decision
        decision, err = bucket.decide(ident, req.get_body_data(), snapshot.rules())
        if not decision then
            return refuse(err)
        end
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

-- GET .../piece/<n>/token/, PATCH .../move/: oc.moves, else the service.
function _M.moves()
    local player = publish.user_id()
    if not player then
        return refuse(auth.unauthorized("missing"))
    end
    local a, err = moves.answer(player)
    if a == false then
        return ngx.exec("@publish_plain")
    elseif not a then
        return refuse(err)
    end
    publish.no_store()
    return answer(a)
end

-- GET /newapi/puzzle/<id>/updates/: the SSE stream (oc.stream) unless
-- ?since= asks for catch-up, or Redis does not hold the puzzle.
function _M.updates()
    if ngx.var.arg_since then
        return ngx.exec("@publish_plain")
    end
    -- the access phase let anonymous callers through (services decide on /newapi)
    if not publish.user_id() then
        return refuse(auth.unauthorized("missing"))
    end
    local red, id = stream.open(ngx.var.uri)
    if red == false then
        return ngx.exec("@publish_stream")
    elseif not red then
        return refuse(id) -- id: the refusal
    end
    return sse("stream", stream.relay, red, id)
end

-- GET /newapi/jobs/<id>/events/stream: oc.job_events (live, Redis pub/sub);
-- auth and the catch-up are the jobs service's answers, through /_oc/jobs/.
function _M.job_events()
    local id, err = job_events.job_id(ngx.var.uri)
    if not id then
        return refuse(err)
    end
    local s
    s, err = job_events.open(id, ngx.var.http_last_event_id or ngx.var.arg_after or "", job_events.caller())
    if not s and err.body then -- the service's own answer (401, 404, 400, 5xx), as it is
        ngx.var.oc_cache_control = "no-store"
        local www = err.headers and err.headers["WWW-Authenticate"]
        return answer({ status = err.status, headers = { ["WWW-Authenticate"] = www }, body = err.body })
    elseif not s then
        return refuse(err)
    end
    return sse("job events", job_events.relay, s)
end

-- Rewrite phase of /_oc/jobs/ (the stream's catch-up subrequests).
function _M.job_events_caller()
    job_events.restore_caller(settings.get().gateway_secret)
end

function _M.index()
    if req.get_method() ~= "GET" and req.get_method() ~= "HEAD" then
        return refuse(errors.new(405, "method_not_allowed", ERR_INDEX_METHOD, { Allow = "GET" }))
    end
    request.assign()
    ngx.say(settings.get().index_json)
end

-- Anything not routed (internal paths included): 404, or a purge.
function _M.not_found()
    if req.get_method() == "PURGE" then
        return _M.access("purge_any")
    end
    return refuse(errors.new(404, "not_found", ERR_NOT_FOUND))
end

-- error_page target: nginx (or an upstream failure) chose the status.
function _M.error_page()
    local status = ngx.status
    if not status or status < 400 then
        status = 500
    end
    return refuse(errors.new(status, nil, nil, { ["Content-Type"] = "application/json" }))
end

return _M
