-- Gateway metrics. The log phase adds to this worker's own table (every key
-- a string built once at load, every slot preset: counting allocates nothing
-- and takes no lock); a timer adds those to the shared dict oc_metrics every
-- FLUSH_SECONDS (dict:incr), where render() reads every worker's sums for
-- GET /_metrics on the internal METRICS_ADDR listener (never the public port).
local ngx = ngx
local re_find = ngx.re.find
local sub = string.sub
local floor = math.floor
local now = ngx.now
local start_time = ngx.req.start_time
local concat = table.concat
local tonumber = tonumber
local pairs = pairs
local ipairs = ipairs

local _M = {}

local CLASSES = { "bucket", "jobs", "publish", "stream", "api", "dashboard", "other" }
local BUCKETS = { 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5 }
local STATUS = { "1xx", "2xx", "3xx", "4xx", "5xx" }
local REFUSALS = { [401] = "401", [403] = "403", [413] = "413", [429] = "429" }
local CACHE = { HIT = "HIT", MISS = "MISS", BYPASS = "BYPASS", UPDATING = "UPDATING", STALE = "STALE" }

-- every key, built once: K.req[class][status class], K.lat[class][bucket index]
local K = { req = {}, lat = {}, sum = {}, count = {}, refused = {}, cache = {} }
for _, class in ipairs(CLASSES) do
    K.req[class], K.lat[class] = {}, {}
    for i, s in ipairs(STATUS) do
        K.req[class][i] = "req|" .. class .. "|" .. s
    end
    for i = 1, #BUCKETS + 1 do
        K.lat[class][i] = "lat|" .. class .. "|" .. i
    end
    K.sum[class] = "sum|" .. class
    K.count[class] = "cnt|" .. class
end
for status, name in pairs(REFUSALS) do
    K.refused[status] = "refused|" .. name
end
for status, name in pairs(CACHE) do
    K.cache[status] = "cache|" .. name
end
local UPSTREAM_ERROR, UPSTREAM_TIMEOUT, SSE_OPEN = "upstream|error", "upstream|timeout", "sse_open"
local FLUSH_SECONDS = 1

-- this worker's counts since the last flush: every key present, 0 when nothing
local pending = {}
for _, class in ipairs(CLASSES) do
    for i = 1, #STATUS do
        pending[K.req[class][i]] = 0
    end
    for i = 1, #BUCKETS + 1 do
        pending[K.lat[class][i]] = 0
    end
    pending[K.sum[class]], pending[K.count[class]] = 0, 0
end
for _, key in pairs(K.refused) do
    pending[key] = 0
end
for _, key in pairs(K.cache) do
    pending[key] = 0
end
pending[UPSTREAM_ERROR], pending[UPSTREAM_TIMEOUT] = 0, 0
local CACHED_CLASSES = { api = true, publish = true }

local function dict()
    return ngx.shared.oc_metrics
end

-- the jobs service's routes (runs and campaigns are served by it too)
local JOBS_SERVICE = [[^/newapi/(queue|jobs|workers|data|status|docs|runs|run_program|check_output|download]]
    .. [[|campaigns)(/|$)]]

local function class_of(uri)
    if uri == "/bucket" then
        return "bucket"
    end
    if sub(uri, 1, 8) == "/newapi/" then
        if re_find(uri, JOBS_SERVICE, "jo") then
            if re_find(uri, [[/events/stream/?$]], "jo") then
                return "stream"
            end
            return "jobs"
        end
        if sub(uri, 9, 15) == "puzzle/" or uri == "/newapi/puzzle" then
            if re_find(uri, [[/updates/?$]], "jo") then
                return "stream"
            end
            return "publish"
        end
        return "api"
    end
    if sub(uri, 1, 11) == "/dashboard/" or sub(uri, 1, 8) == "/puzzle/" or uri == "/dashboard" then
        return "dashboard"
    end
    return "other"
end
_M.class_of = class_of

-- log_by_lua: count this request (in this worker's table)
function _M.log()
    local status = ngx.status
    local class = class_of(ngx.var.uri or "")
    local p = pending
    local s = floor(status / 100)
    if s >= 1 and s <= 5 then
        local key = K.req[class][s]
        p[key] = p[key] + 1
    end
    local took = now() - start_time()
    local i = 1
    while i <= #BUCKETS and took > BUCKETS[i] do
        i = i + 1
    end
    local key = K.lat[class][i]
    p[key] = p[key] + 1
    key = K.sum[class]
    p[key] = p[key] + took
    key = K.count[class]
    p[key] = p[key] + 1
    key = K.refused[status]
    if key then
        p[key] = p[key] + 1
    end
    if CACHED_CLASSES[class] then -- the only routes the cache answers
        key = K.cache[ngx.var.oc_cache_status]
        if key then
            p[key] = p[key] + 1
        end
    end
    if status == 502 then
        p[UPSTREAM_ERROR] = p[UPSTREAM_ERROR] + 1
    elseif status == 504 then
        p[UPSTREAM_TIMEOUT] = p[UPSTREAM_TIMEOUT] + 1
    end
    if class == "stream" and ngx.ctx.oc_sse then -- ngx.ctx only here: it is a table per request
        local d = dict()
        if d then
            d:incr(SSE_OPEN, -1, 0)
        end
    end
end

-- this worker's counts into the shared dict
local function flush()
    local d = dict()
    if not d then
        return
    end
    for key, n in pairs(pending) do
        if n ~= 0 then
            d:incr(key, n, 0)
            pending[key] = 0
        end
    end
end
_M.flush = flush

-- init_worker: flush every FLUSH_SECONDS
function _M.start()
    if dict() then
        ngx.timer.every(FLUSH_SECONDS, function(premature)
            if not premature then
                flush()
            end
        end)
    end
end

-- a served SSE stream opens (all workers' count; log() closes it)
function _M.stream_opened()
    local d = dict()
    if d then
        d:incr(SSE_OPEN, 1, 0)
        ngx.ctx.oc_sse = true -- log() closes it
    end
end

local function num(d, key)
    return d:get(key) or 0
end

-- The Prometheus text of every counter (snapshot: this worker's view).
function _M.render(snapshot_version)
    flush() -- this worker's counts are current; the others' are at most FLUSH_SECONDS old
    local d = dict()
    local out = {}
    local function add(line)
        out[#out + 1] = line
    end
    add("# HELP oc_gateway_requests_total Requests answered by the gateway, by route class and status class")
    add("# TYPE oc_gateway_requests_total counter")
    for _, class in ipairs(CLASSES) do
        for i, s in ipairs(STATUS) do
            local n = num(d, K.req[class][i])
            if n > 0 then
                add(('oc_gateway_requests_total{route="%s",status="%s"} %d'):format(class, s, n))
            end
        end
    end
    add("# HELP oc_gateway_request_duration_seconds Time from the first byte read to the last byte sent")
    add("# TYPE oc_gateway_request_duration_seconds histogram")
    for _, class in ipairs(CLASSES) do
        local count = num(d, K.count[class])
        if count > 0 then
            local cumulative = 0
            for i, le in ipairs(BUCKETS) do
                cumulative = cumulative + num(d, K.lat[class][i])
                add(('oc_gateway_request_duration_seconds_bucket{route="%s",le="%s"} %d'):format(class, le, cumulative))
            end
            add(('oc_gateway_request_duration_seconds_bucket{route="%s",le="+Inf"} %d'):format(class, count))
            add(('oc_gateway_request_duration_seconds_sum{route="%s"} %.6f'):format(class, num(d, K.sum[class])))
            add(('oc_gateway_request_duration_seconds_count{route="%s"} %d'):format(class, count))
        end
    end
    add("# HELP oc_gateway_cache_total Cacheable-route answers by cache status")
    add("# TYPE oc_gateway_cache_total counter")
    for status, key in pairs(K.cache) do
        add(('oc_gateway_cache_total{status="%s"} %d'):format(status, num(d, key)))
    end
    add("# HELP oc_gateway_refusals_total Refused requests by status (401 credentials, 403 not allowed, "
        .. "413 body too large, 429 rate limit)")
    add("# TYPE oc_gateway_refusals_total counter")
    for status, key in pairs(K.refused) do
        add(('oc_gateway_refusals_total{status="%d"} %d'):format(status, num(d, key)))
    end
    add("# HELP oc_gateway_upstream_errors_total Upstream failures answered 502 (error) or 504 (timeout)")
    add("# TYPE oc_gateway_upstream_errors_total counter")
    add(('oc_gateway_upstream_errors_total{kind="error"} %d'):format(num(d, UPSTREAM_ERROR)))
    add(('oc_gateway_upstream_errors_total{kind="timeout"} %d'):format(num(d, UPSTREAM_TIMEOUT)))
    add("# HELP oc_gateway_sse_open SSE streams the gateway serves now")
    add("# TYPE oc_gateway_sse_open gauge")
    add(("oc_gateway_sse_open %d"):format(num(d, SSE_OPEN)))
    local version = tonumber(snapshot_version)
    add("# HELP oc_gateway_snapshot_version The token/grant snapshot version this worker uses (0: none)")
    add("# TYPE oc_gateway_snapshot_version gauge")
    add(("oc_gateway_snapshot_version %d"):format(version or 0))
    if version and version > 1e12 then -- a version is the publisher's clock in ms
        add("# HELP oc_gateway_snapshot_age_seconds Seconds since the snapshot this worker uses was published")
        add("# TYPE oc_gateway_snapshot_age_seconds gauge")
        add(("oc_gateway_snapshot_age_seconds %.3f"):format(ngx.now() - version / 1000))
    end
    return concat(out, "\n") .. "\n"
end

return _M
