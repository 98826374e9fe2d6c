-- Response cache for GET /newapi/... in the oc_cache shared dict.
--
-- Entries are keyed by a purge generation, a scope and the URI with its
-- query string: scope "p" (public: any caller) or "u<user_id>" (the answer
-- carried Cache-Control: private or Vary on the caller).  The service's
-- Cache-Control decides: no-store / no-cache / no max-age -> not stored;
-- s-maxage or max-age -> TTL (capped).  Purging a path moves its generation
-- (a millisecond clock in oc_cache_gen), which strands every entry of that
-- path, for every user and query string, at once; "/newapi" purges all.
--
-- An expired entry is kept GRACE seconds longer: the first request after
-- expiry refreshes it from the service while the others are answered the
-- stale copy (X-Cache-Status: UPDATING), so an expiry under load sends one
-- request upstream instead of every waiting client (nginx's
-- proxy_cache_use_stale updating + proxy_cache_lock, in one).
local lrucache = require "resty.lrucache"
local keys = require "oc.keys"
local settings = require "oc.settings"

local ngx = ngx
local find, sub, match = string.find, string.sub, string.match
local tonumber, concat = tonumber, table.concat
local floor, max, min = math.floor, math.max, math.min

local _M = {}

local entries = ngx.shared.oc_cache
local gens = ngx.shared.oc_cache_gen
-- parsed entries, per worker, by entry key: a HIT copies no string out of
-- the shared dict (purges change the key, so they need no L1 invalidation)
local l1 = assert(lrucache.new(2000))
local ALL = "/newapi"
local MAX_TTL = 300
local GRACE = 10
local REFRESH_LOCK = 5

local function norm(path)
    if #path > 1 and sub(path, -1) == "/" then
        return sub(path, 1, -2)
    end
    return path
end

local ALL_GEN = keys.cache_gen(ALL)
local PURGE_ROUTE = "/newapi/_cache"
local NO_CACHE = [[^/newapi/puzzle/.*/(token|move|updates)/?$]]

-- Whether a request on route ("api" | "jobs" | "publish" | ...) may be
-- answered from the cache (and its answer stored).
function _M.cacheable(route, method, path)
    return route ~= "jobs" and route ~= "bucket" and method == "GET"
        and not (route == "publish" and ngx.re.find(path, NO_CACHE, "jo") ~= nil)
end

-- The path a DELETE /newapi/_cache/<path> purges.
function _M.purge_target(uri)
    local path = sub(uri, #PURGE_ROUTE + 1)
    if not find(path, "^/newapi") then
        path = "/newapi" .. path
    end
    return path
end

local function generation(path)
    return (gens:get(ALL_GEN) or "0") .. "." .. (gens:get(keys.cache_gen(norm(path))) or "0")
end

local function uri()
    local args = ngx.var.args
    local path = ngx.var.uri
    if args then
        return path, path .. "?" .. args
    end
    return path, path
end

local function bump(path)
    local key = keys.cache_gen(path)
    local gen = max(floor(ngx.now() * 1000), (tonumber(gens:get(key)) or 0) + 1)
    gens:set(key, tostring(gen), MAX_TTL + 60)
end

-- Drop the entries of path and of every collection above it
-- (/newapi/a/b -> /newapi/a/b, /newapi/a, /newapi); "/newapi" drops all.
function _M.purge(path)
    path = norm(path)
    if path == ALL or path == ALL .. "/*" or path == "" then
        bump(ALL)
        return true
    end
    while #path > #ALL do
        bump(path)
        path = match(path, "^(.*)/[^/]*$") or ALL
    end
    return true
end

-- raw: "content-type \t cache-control \t stored-at \t expires-at \n body"
local function parse(raw)
    local nl = find(raw, "\n", 1, true)
    local ctype, cc, stored, expires = match(sub(raw, 1, nl - 1), "^(.-)\t(.-)\t([%d.]+)\t([%d.]+)$")
    return { ctype = ctype, cc = cc, stored = tonumber(stored), expires = tonumber(expires) or 0,
             body = sub(raw, nl + 1) }
end

-- On a cacheable GET: the stored entry if any, and HIT or UPDATING.
-- Otherwise remembers in ngx.ctx what the header filter needs to store
-- the answer.
function _M.lookup(ident)
    local path, full = uri()
    local gen = generation(path)
    local pkey = keys.cache_entry(gen, "p", full)
    local ukey = ident and keys.cache_entry(gen, ident.scope, full)
    local now = ngx.now()
    local e = l1:get(pkey) or (ukey and l1:get(ukey))
    if e and e.expires > now then
        return e, "HIT"
    end
    local key, raw = pkey, entries:get(pkey)
    if not raw and ukey then
        key, raw = ukey, entries:get(ukey)
    end
    local lock
    if raw then
        e = parse(raw)
        if e.expires > now then
            l1:set(key, e, e.expires - now)
            return e, "HIT"
        end
        lock = keys.cache_lock(key)
        if not entries:add(lock, true, REFRESH_LOCK) then
            return e, "UPDATING" -- another request is refreshing it
        end
    end
    ngx.ctx.cache = { gen = gen, full = full, ident = ident, lock = lock }
    ngx.var.oc_cache_status = "MISS"
    return nil
end

-- Set the headers of a stored entry served from the access phase; the
-- body to send. Headers go through $oc_* variables and add_header in the
-- conf: setting ngx.header costs ~2 us each, a variable ~0.1 us.
function _M.serve(e, how)
    local var = ngx.var
    if e.ctype ~= "application/json" then -- the conf's default_type
        ngx.header["Content-Type"] = e.ctype
    end
    var.oc_cache_control = e.cc
    var.oc_age = max(0, floor(ngx.now() - e.stored))
    var.oc_cache_status = how
    return e.body
end

local function ttl_of(cc)
    local ttl = tonumber(match(cc, "s%-maxage=(%d+)") or match(cc, "max%-age=(%d+)"))
    return ttl and min(ttl, MAX_TTL) or 0
end

-- Header filter: decide whether this answer is stored, and how.
local function plan(ctx)
    local c = ctx.cache
    local h = ngx.header
    if ngx.status ~= 200 or h["Set-Cookie"] then
        return
    end
    local cc = h["Cache-Control"]
    if type(cc) ~= "string" then
        return
    end
    cc = cc:lower()
    if find(cc, "no-store", 1, true) or find(cc, "no-cache", 1, true) then
        return
    end
    local ttl = ttl_of(cc)
    if ttl <= 0 then
        return
    end
    local scope = "p"
    local vary = h["Vary"]
    vary = type(vary) == "string" and vary:lower() or ""
    if find(vary, "*", 1, true) then
        return
    end
    if find(cc, "private", 1, true) or find(vary, "authorization", 1, true)
        or find(vary, "x-user", 1, true) then
        if not c.ident then
            return
        end
        scope = c.ident.scope
    end
    c.key = keys.cache_entry(c.gen, scope, c.full)
    c.ttl = ttl
    local now = ngx.now()
    c.head = concat({ tostring(h["Content-Type"] or "application/json"), h["Cache-Control"],
                      tostring(now), tostring(now + ttl) }, "\t") .. "\n"
    c.chunks, c.size = {}, 0
end

function _M.header_filter(ctx)
    plan(ctx)
    local c = ctx.cache
    if c.lock and not c.chunks then
        entries:delete(c.lock) -- nothing to store: let the next request try
    end
end

-- Body filter: collect the body of an answer being stored.
function _M.body_filter(ctx)
    local c = ctx.cache
    if not c.chunks then
        return
    end
    local chunk = ngx.arg[1]
    if chunk ~= "" then
        c.size = c.size + #chunk
        if c.size > settings.get().cache_max_body then
            c.chunks = nil
            if c.lock then
                entries:delete(c.lock)
            end
            return
        end
        c.chunks[#c.chunks + 1] = chunk
    end
    if ngx.arg[2] then
        entries:set(c.key, c.head .. concat(c.chunks), c.ttl + GRACE)
        if c.lock then
            entries:delete(c.lock)
        end
        c.chunks = nil
    end
end

return _M
