-- GET /newapi/queue/poll and PATCH /newapi/jobs/<id>/completed, answered by
-- the gateway itself with the jobs service's own Redis scripts
-- (object_challenge/jobs/scripts/poll.lua, complete.lua): the service publishes
-- their SHA1s and settings in oc:jobs:gateway (object_challenge/jobs/lease_path.py),
-- so both paths run the same decision, and the answer is filled into the
-- template the service rendered at enqueue (queue.answer_template), so both
-- give the same document.
--
-- Whatever the gateway cannot decide goes to the service (false): no settings
-- published, NOSCRIPT, Redis errors, a caller without the worker or admin
-- role or bound to other worker ids, an argument the service would refuse
-- (it words every 400 and 403), a poll that leases nothing or a refused
-- completion (the service runs it again and words the answer: neither changed
-- anything), a completion body outside the plain subset `completion` checks,
-- and a job of a module whose completions the service must see (hooks).
local cjson = require "cjson.safe"
local keys = require "oc.keys"
local service_scripts = require "oc.service_scripts"
local store = require "oc.store"

local ngx = ngx
local re_find = ngx.re.find
local concat, sort = table.concat, table.sort
local floor, fmt = math.floor, string.format
local ipairs, tonumber, tostring, type = ipairs, tonumber, tostring, type

-- own settings: numbers keep 14 significant digits (`completion` sends longer
-- ones to the service), an empty table is an object
local codec = cjson.new()

local _M = {}

local NUMBERS = { "lease_ms", "expire_batch", "poll_scan", "max_modules", "max_depth" }
local POLL = [[^/newapi/queue/poll/?$]]
local COMPLETE = [[^/newapi/jobs/([A-Za-z0-9_.:-]{1,128})/completed$]]
local BODY_MAX = 16384 -- bytes of a completion the gateway checks itself
local DIGITS_MAX = 14 -- digits of one number (cjson's precision)

local scripts = service_scripts.new(keys.jobs_gateway, NUMBERS, "job_lease")

-- oc:jobs:gateway (oc.service_scripts), its `hooked` modules as a set (made
-- once per read of the hash: the cached table keeps the set until the next one).
local function script_settings(red)
    local conf, err = scripts:settings(red)
    if conf and type(conf.hooked) == "string" then
        local hooked = {}
        for m in conf.hooked:gmatch("[^,]+") do
            hooked[m] = true
        end
        conf.hooked = hooked
    end
    return conf, err
end

-- Milliseconds -> ISO 8601 as Python's datetime.isoformat() writes them
-- (store.iso_from_ms): microseconds only when there are some.
function _M.iso(ms)
    ms = tonumber(ms)
    if not ms then
        return nil
    end
    local base = os.date("!%Y-%m-%dT%H:%M:%S", floor(ms / 1000))
    local frac = ms % 1000
    if frac == 0 then
        return base .. "+00:00"
    end
    return fmt("%s.%03d000+00:00", base, frac)
end

local function json_string(s)
    if s == nil or s == "" then
        return "null"
    end
    return codec.encode(s)
end

-- ?modules=a,b -> "a,b" (sorted, unique: queue.module_set), "" for none, or
-- nil: the service words the 400.
function _M.modules(value, conf)
    if value == nil or not value:find("%S") then
        return ""
    end
    local names, seen, n = {}, {}, 0
    for part in value:gmatch("[^,]+") do
        local name = part:match("^%s*(.-)%s*$")
        if name ~= "" then
            n = n + 1
            if n > conf.max_modules or not re_find(name, conf.module_re, "jo") then
                return nil
            end
            if not seen[name] then
                seen[name] = true
                names[#names + 1] = name
            end
        end
    end
    sort(names)
    return concat(names, ",")
end

-- The body with every string literal emptied (""), or nil when a string does
-- not end: what the number and bracket rules look at.
local function without_strings(raw)
    local out, i = {}, 1
    while true do
        local q = raw:find('"', i, true)
        if not q then
            out[#out + 1] = raw:sub(i)
            return concat(out)
        end
        out[#out + 1] = raw:sub(i, q - 1) .. '""'
        local j = q + 1
        while true do
            local c = raw:find('["\\]', j)
            if not c then
                return nil
            end
            if raw:byte(c) == 92 then -- a backslash: skip the escaped character
                j = c + 2
            else
                j = c + 1
                break
            end
        end
        i = j
    end
end

-- A completion body the gateway stores itself: {result = the result JSON (as
-- service.Jobs.complete builds it: failed, info, result, message), info = its
-- info member's JSON, failed, reported = the worker id it names}, or nil when
-- the service must decide. Only a plain subset is taken here, so that it cannot accept what
-- the service refuses nor store it differently (tests/cases/job_completions.json,
-- run by both): ASCII without escapes \u, no string starting with $; outside
-- strings: no empty array, at most max_depth / 2 brackets, numbers of at most
-- 14 digits and no exponent, NaN, Infinity or all-zero fraction (1.0 stays a
-- float there).
function _M.completion(raw, conf)
    raw = raw or ""
    if #raw > BODY_MAX or raw:find("[\128-\255]") or raw:find("\\u", 1, true) or raw:find('"$', 1, true) then
        return nil
    end
    local bare = without_strings(raw)
    if not bare or bare:find("%[%s*%]") or bare:find("NaN", 1, true) or bare:find("Infinity", 1, true) then
        return nil
    end
    local _, brackets = bare:gsub("[%[{]", "")
    if brackets > floor(conf.max_depth / 2) then
        return nil
    end
    for number in bare:gmatch("[%d.eE+-]+") do
        local numeric = number:find("%d")
        if numeric and (number:find("[eE]") or number:find("%d%.0+$") or number:find("%d%.0+[^%d]")) then
            return nil
        end
        local _, digits = number:gsub("%d", "")
        if digits > DIGITS_MAX then
            return nil
        end
    end
    local body
    if raw:find("^%s*$") then
        body = {}
    elseif raw:find("^%s*{") then
        body = codec.decode(raw)
        if type(body) ~= "table" then
            return nil
        end
    else
        return nil
    end
    local failed = body.failed
    if failed == nil then
        failed = false
    elseif type(failed) ~= "boolean" then
        return nil
    end
    local null = codec.null
    local info = body.info == nil and null or body.info
    local result = { failed = failed, info = info, result = body.result == nil and null or body.result,
                     message = body.message == nil and null or body.message }
    local reported = type(info) == "table" and info.worker_id or nil
    if type(reported) ~= "string" or not re_find(reported, conf.worker_re, "jo") then
        reported = ""
    end
    return { result = codec.encode(result), info = codec.encode(info), failed = failed, reported = reported }
end

local TIMES = { "at", "not_before" } -- event fields in ms that the service renders as ISO 8601

-- The history events Redis appended (JSON, `at` in ms) as the service renders
-- them (queue.history): times in ISO 8601.
local function events(raws)
    local out = {}
    for i, raw in ipairs(raws or {}) do
        local event = codec.decode(raw)
        if type(event) ~= "table" then
            return nil
        end
        for _, name in ipairs(TIMES) do
            if type(event[name]) == "number" then
                event[name] = _M.iso(event[name])
            end
        end
        out[i] = codec.encode(event)
    end
    return out
end

-- A job's answer template (queue.answer_template) as its three parts: {head,
-- final, history}, or nil (none: a job enqueued before templates).
local function template(tpl)
    if type(tpl) ~= "string" then
        return nil
    end
    local head, final, hist = tpl:match("^([^%z]*)%z([^%z]*)%z([^%z]*)$")
    return head and { head = head, final = final, history = hist }
end

-- The job's answer from its template's parts and the live members, or nil.
local function render(t, members, raws, with_final)
    local extra = events(raws)
    if not extra then
        return nil
    end
    local parts = { t.head }
    local final, hist = t.final, t.history
    if with_final and final ~= "" then
        parts[#parts + 1] = ", " .. final
    end
    for _, m in ipairs(members) do
        parts[#parts + 1] = ', "' .. m[1] .. '": ' .. m[2]
    end
    local history = hist
    if #extra > 0 then
        history = (hist ~= "" and hist .. ", " or "") .. concat(extra, ", ")
    end
    parts[#parts + 1] = ', "history": [' .. history .. "]}\n"
    return concat(parts)
end

local function one_arg(args, name)
    local v = args[name]
    if v == nil then
        return ""
    elseif type(v) ~= "string" then
        return nil -- repeated, or without a value
    end
    return v
end

-- The caller's queue, worker id and modules, or nil: the service decides.
local function caller_args(ident, conf, poll)
    if not ident or (ident.role ~= "worker" and ident.role ~= "admin") then
        return nil
    end
    local args = ngx.req.get_uri_args(20)
    local worker = one_arg(args, "worker_id")
    if not worker or (worker ~= "" and not re_find(worker, conf.worker_re, "jo")) then
        return nil
    end
    local prefix = ident.role == "worker" and ident.worker_prefix
    if prefix and not (worker ~= "" and worker:sub(1, #prefix) == prefix) then
        return nil
    end
    if not poll then
        return worker
    end
    local queue = one_arg(args, "queue")
    if queue == "" then
        queue = conf.default_queue
    end
    if not queue or not re_find(queue, conf.queue_re, "jo") then
        return nil
    end
    local modules = _M.modules(one_arg(args, "modules"), conf)
    if not modules then
        return nil
    end
    return worker, queue, modules
end

local function ok(body)
    return { status = 200, headers = { ["Content-Type"] = "application/json", ["Content-Length"] = #body },
             body = body }
end

local function poll(red, conf, ident)
    local worker, queue, modules = caller_args(ident, conf, true)
    if not worker then
        store.release(red)
        return false
    end
    local data = scripts:eval(red, conf.poll, 3, keys.jobs_queue(queue), keys.jobs_queue_attributes(queue),
        keys.jobs_worker_attributes(worker ~= "" and worker or "-"), conf.prefix, worker,
        conf.lease_ms, conf.expire_batch, modules, conf.poll_scan, queue, "1")
    if not data then
        return false
    end
    local job = data.job
    if type(job) ~= "table" then
        return false -- refused or empty: the service polls again and words it
    end
    local t = template(job.tpl)
    local body = t and render(t, {
        { "state", '"running"' },
        { "attempt", tostring(job.attempt) },
        { "worker_id", json_string(job.worker) },
        { "lease_expires_at", json_string(_M.iso(job.lease_until)) },
        { "not_before", "null" },
        { "lease_seconds", conf.lease_seconds },
    }, job.history, true)
    return body and ok(body) or { leased = job.id, lease_seconds = conf.lease_seconds }
end

local function complete(red, conf, ident, job_id)
    local worker = caller_args(ident, conf, false)
    local c
    if worker then
        ngx.req.read_body()
        c = not ngx.req.get_body_file() and _M.completion(ngx.req.get_body_data(), conf)
    end
    if not c then
        store.release(red)
        return false
    end
    local live, err = red:hmget(keys.jobs_job(job_id), "modules", "tpl")
    if not live then
        red:close()
        ngx.log(ngx.WARN, "job_lease: redis hmget: ", err, "; the jobs service decides")
        return false
    end
    local t = template(live[2])
    -- unknown, enqueued before templates, or a document with its own cancel_requested
    -- (which the service's answer merges): the service completes it
    if not t or t.final:find('"cancel_requested"', 1, true) then
        store.release(red)
        return false
    end
    for m in tostring(live[1]):gmatch("[^,]+") do
        if conf.hooked[m] then
            store.release(red)
            return false
        end
    end
    local data = scripts:eval(red, conf.complete, 1, keys.jobs_job(job_id), conf.prefix, job_id, worker,
        c.failed and "failed" or "completed", c.result, c.reported, "1")
    if not data then
        return false
    end
    if not data.ok then
        return false -- refused: nothing changed; the service words it
    end
    local members = {
        { "state", json_string(data.state) },
        { "attempt", tostring(data.attempt) },
        { "worker_id", json_string(data.worker) },
        { "lease_expires_at", "null" },
        { "not_before", "null" },
    }
    if data.state == "cancelled" then
        members[#members + 1] = { "cancel_requested", "true" }
    end
    members[#members + 1] = { "result", c.result }
    members[#members + 1] = { "info", c.info }
    members[#members + 1] = { "finished_at", json_string(_M.iso(data.finished_at)) }
    local body = render(t, members, data.history, false)
    return body and ok(body) or { leased = job_id }
end

-- The answer {status, headers, body}; {leased = job id}: the job changed here
-- but its answer is the service's (GET /jobs/<id>); or false: the service decides.
function _M.answer(ident)
    local uri, method = ngx.var.uri, ngx.req.get_method()
    local job_id
    if method == "PATCH" then
        local m = ngx.re.match(uri, COMPLETE, "jo")
        job_id = m and m[1]
        if not job_id then
            return false
        end
    elseif method ~= "GET" or not re_find(uri, POLL, "jo") then
        return false
    end
    local red, err = store.connect()
    if not red then
        ngx.log(ngx.WARN, "job_lease: ", err, "; the jobs service decides")
        return false
    end
    local conf = script_settings(red)
    if not conf then
        store.release(red)
        return false
    end
    if job_id then
        return complete(red, conf, ident, job_id)
    end
    return poll(red, conf, ident)
end

return _M
