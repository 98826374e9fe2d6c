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
local job_lease = require "oc.job_lease"
local limits = require "oc.limits"
local metrics = require "oc.metrics"
local moves = require "oc.moves"
local publish = require "oc.publish"
local request = require "oc.request"
local settings = require "oc.settings"
local snapshot = require "oc.snapshot"
local stream = require "oc.stream"
local streams = require "oc.streams"
local store = require "oc.store"
local upstream = require "oc.upstream"

local ngx = ngx
local req = ngx.req
local pairs, pcall, type = pairs, pcall, type
local find = string.find

local _M = {}

local ERR_NOT_FOUND = "no such route; see GET / for the index"
local ERR_PURGE_ADMIN = "purging the cache needs the admin role"
local ERR_BUCKET_METHOD = "use POST /bucket"
local ERR_PURGE_METHOD = "use DELETE /newapi/_cache/<path> or PURGE <path>"
local ERR_INDEX_METHOD = "GET / only"
local ERR_HEALTHZ_METHOD = "GET /healthz only"
local ERR_METRICS_METHOD = "GET /_metrics only"
local ERR_REDIRECT = "the resource is at the address in the Location header"
local ERR_STREAM_LOADING = "the puzzle is being loaded; retry shortly"
local ERR_STREAM_METHOD = "streams take GET only"

-- nil, or the 405 of a stream route asked with another method than GET
-- (HEAD too: a stream has no end to send the headers of).
local function stream_method()
    if req.get_method() ~= "GET" then
        return errors.new(405, "method_not_allowed", ERR_STREAM_METHOD, { Allow = "GET" })
    end
end

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
-- Redis goes away (a gone client ends the request at once). The caller's
-- open stream (a slot of oc.streams) is given back on every way out: the
-- relay's end, an error in it, the client's abort.
local function sse(what, slot, relay, ...)
    local closed = false
    local function close()
        if not closed then
            closed = true
            streams.close(slot)
        end
    end
    if not ngx.on_abort(function() close(); ngx.exit(499) end) then
        ngx.log(ngx.WARN, what, ": lua_check_client_abort is off; a gone client is noticed on the next write")
    end
    ngx.status = 200
    local h = ngx.header
    h["Content-Type"] = "text/event-stream"
    h["X-Accel-Buffering"] = "no"
    ngx.var.oc_cache_control = "no-store"
    metrics.stream_opened() -- closed in the log phase (oc.metrics.log), however it ends
    local ok, err = pcall(relay, ...)
    close()
    if not ok then
        ngx.log(ngx.ERR, what, ": ", err)
    end
    return ngx.exit(ngx.OK)
end

function _M.init(json)
    assert(settings.load(json))
end

function _M.init_worker()
    snapshot.start()
    metrics.start()
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

-- route: "bucket" | "api" | "jobs" | "jobs_lease" | "publish" | "purge"
-- ("jobs_lease": a jobs route whose content phase (oc.job_lease) needs the caller)
function _M.access(route)
    local method = req.get_method()
    local lease = route == "jobs_lease"
    if lease then
        route = "jobs"
    end
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
        if lease then
            ngx.ctx.oc_ident = ident
        end
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

-- An upstream answer not in the house shape: an error or a redirect whose
-- body is not JSON (gunicorn's HTML 400/414/431, a crashed worker's page, a
-- redirect). nil, or the JSON body that replaces it (same status; a
-- redirect keeps its Location, which the service built from the client's
-- Host, port included).
local function house_shape(status)
    local h = ngx.header
    local ct = h["Content-Type"]
    if ct and find(ct, "json", 1, true) then
        return nil
    end
    local err
    if status < 400 then
        err = errors.new(status, "redirect", ERR_REDIRECT, nil, { location = h["Location"] })
    else
        err = errors.new(status)
    end
    h["Content-Type"] = "application/json"
    h["Content-Length"] = nil
    ngx.var.oc_cache_control = "no-store"
    return errors.render(err, request.id()) .. "\n"
end

-- Every proxied location: the answer's shape, then cache store / purge.
function _M.header_filter()
    if served_from_cache() then
        return
    end
    local ctx = ngx.ctx
    local status = ngx.status
    if status >= 300 and status ~= 304 and ngx.var.upstream_status then
        ctx.replace = house_shape(status)
    elseif status == 200 and req.get_method() == "OPTIONS" and ngx.header["Content-Length"] == "0" then
        -- a service's bare OPTIONS answer (Flask: 200, text/html, empty): 204 with its Allow
        ngx.status = 204
        ngx.header["Content-Type"] = nil
    end
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
    if ctx.replace then
        ngx.arg[1] = ngx.arg[2] and ctx.replace or ""
        return
    end
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

-- GET /newapi/queue/poll and PATCH /newapi/jobs/<id>/completed: oc.job_lease
-- answers with the jobs service's scripts, or the service does (@jobs_plain).
-- A job leased or completed here whose answer only the service can render
-- (a document without a template) is read back from it as the caller.
function _M.job_lease()
    local a = job_lease.answer(ngx.ctx.oc_ident)
    if a == false then
        return ngx.exec("@jobs_plain")
    end
    if a.leased then
        local res = ngx.location.capture("/_oc/jobs/jobs/" .. a.leased,
            { method = ngx.HTTP_GET, ctx = { oc_caller = job_events.caller() } })
        local body = res.body or ""
        if res.status == 200 and a.lease_seconds and find(body, "^{") then
            body = '{"lease_seconds": ' .. a.lease_seconds .. ", " .. body:sub(2)
        end
        a = { status = res.status, body = body,
              headers = { ["Content-Type"] = "application/json", ["Content-Length"] = #body } }
    end
    return answer(a)
end

-- GET /newapi/puzzle/<id>/updates/: the SSE stream (oc.stream) unless
-- ?since= asks for catch-up. A puzzle Redis does not hold is loaded through
-- one quick service call (or refused as the service refuses it): the stream
-- itself is always served here, never by a service worker.
function _M.updates()
    local wrong = stream_method()
    if wrong then
        return refuse(wrong)
    end
    if ngx.var.arg_since then
        return ngx.exec("@publish_plain")
    end
    -- the access phase let anonymous callers through (services decide on /newapi)
    local player = publish.user_id()
    if not player then
        return refuse(auth.unauthorized("missing"))
    end
    local red, id = stream.open(ngx.var.uri)
    if red == false then
        local a = stream.load(id, job_events.caller())
        if a then -- the service's refusal (404, 409 puzzle_generating, 503), as it is
            publish.no_store()
            return answer(a)
        end
        red, id = stream.open(ngx.var.uri)
        if red == false then
            return refuse(errors.new(503, "stream_unavailable", ERR_STREAM_LOADING, { ["Retry-After"] = "1" }))
        end
    end
    if not red then
        return refuse(id) -- id: the refusal
    end
    local slot, err = streams.open(player)
    if slot == nil then
        red:close()
        return refuse(err)
    end
    return sse("stream", slot, stream.relay, red, id)
end

-- GET /newapi/jobs/<id>/events/stream: oc.job_events (live, Redis pub/sub);
-- auth and the catch-up are the jobs service's answers, through /_oc/jobs/.
function _M.job_events()
    local wrong = stream_method()
    if wrong then
        return refuse(wrong)
    end
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
    local slot
    slot, err = streams.open(publish.user_id() or ngx.var.remote_addr)
    if slot == nil then
        job_events.close(s)
        return refuse(err)
    end
    return sse("job events", slot, job_events.relay, s)
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

-- GET /_metrics on the internal METRICS_ADDR listener: Prometheus text.
function _M.metrics()
    if req.get_method() ~= "GET" and req.get_method() ~= "HEAD" then
        return refuse(errors.new(405, "method_not_allowed", ERR_METRICS_METHOD, { Allow = "GET" }))
    end
    ngx.header["Content-Type"] = "text/plain; version=0.0.4; charset=utf-8"
    ngx.print(metrics.render(snapshot.version()))
end

-- Anything not routed (internal paths included): 404, or a purge.
function _M.not_found()
    if req.get_method() == "PURGE" then
        return _M.access("purge_any")
    end
    return refuse(errors.new(404, "not_found", ERR_NOT_FOUND))
end

-- Two Authorization headers: nginx refuses the request itself (400); the
-- gateway's answer for them is the 401 of malformed credentials.
local function two_authorizations()
    local ok, headers = pcall(req.get_headers, 100)
    return ok and type(headers) == "table" and type(headers["authorization"]) == "table"
end

-- error_page target: nginx (or an upstream failure) chose the status.
-- 494 is nginx's own "request header too large" (it would send a 400): the
-- gateway answers the standard 431.
function _M.error_page()
    local status = ngx.status
    if not status or status < 400 then
        status = 500
    end
    if status == 494 then
        status = 431
    elseif status == 400 and two_authorizations() then
        return refuse(auth.unauthorized("malformed"))
    end
    return refuse(errors.new(status, nil, nil, { ["Content-Type"] = "application/json" }))
end

-- GET /healthz, for load balancers: is Redis reachable from the gateway,
-- which snapshot does this worker decide with and when did its follower
-- last reach Redis. 200 when Redis answers, else 503 (JSON, never cached).
function _M.healthz()
    local method = req.get_method()
    if method ~= "GET" and method ~= "HEAD" then
        return refuse(errors.new(405, "method_not_allowed", ERR_HEALTHZ_METHOD, { Allow = "GET, HEAD" }))
    end
    local id = request.assign()
    ngx.update_time()
    local started = ngx.now()
    local pong, err = store.call("ping")
    ngx.update_time()
    local now = ngx.now()
    local ok = pong == "PONG"
    local version, checked = snapshot.version(), snapshot.last_ok()
    local body = {
        status = ok and "ok" or "unavailable",
        redis = ok and { ok = true, ms = math.floor((now - started) * 1000 + 0.5) }
            or { ok = false, error = tostring(err) },
        snapshot = {
            version = version and tonumber(version) or cjson.null,
            -- seconds since this worker's follower last read oc:gw:version
            checked_s_ago = checked > 0 and math.floor((now - checked) * 10 + 0.5) / 10 or cjson.null,
            -- false: no snapshot, tokens are checked by the api service
            edge_decisions = version ~= nil,
        },
        request_id = id,
    }
    ngx.status = ok and 200 or 503
    ngx.var.oc_cache_control = "no-store"
    if not ok then
        ngx.header["Retry-After"] = "1"
    end
    ngx.say(cjson.encode(body))
    return ngx.exit(ngx.HTTP_OK)
end

return _M
