-- GET /newapi/jobs/<id>/events/stream: Server-Sent Events of a job's events,
-- served by the gateway from Redis pub/sub, so a watcher holds no Python
-- worker (object_challenge/jobs/events.py writes them; events_add.lua
-- PUBLISHes each stored event's JSON on the job's channel).
--
-- No gap, no duplicate: SUBSCRIBE first, then the catch-up (every event after
-- Last-Event-ID or ?after=) through a short subrequest to the jobs service
-- (/_oc/jobs/ -> GET /newapi/jobs/<id>/events/stream, which also decides
-- auth: owner, worker, admin; 401/404 are its answers), then each published
-- event whose id is past the last one sent (ids sort as strings). The
-- service's catch-up answer holds whole SSE messages (the stored JSON as is),
-- X-Events-Next (the last id) and X-Events-Done (the job is final and every
-- event was read; then the answer ends with "event: end").
--
-- Every TICK seconds without a message the job's state is read from its
-- Redis hash; once it is final (or the hash is gone: finished and recorded),
-- a last catch-up from the service sends what is left and "event: end". A
-- comment goes out at least every KEEPALIVE seconds.
local errors = require "oc.errors"
local keys = require "oc.keys"
local store = require "oc.store"

local ngx = ngx
local re_match = ngx.re.match
local print, flush = ngx.print, ngx.flush
local sub = string.sub
local now = ngx.now

local _M = {}

local TICK = 1               -- seconds between state checks of a quiet stream
local KEEPALIVE = 15         -- a comment at least this often
local RECHECK = 10           -- seconds before asking the service again when the job is not final there yet
local ROUTE = [[^/newapi/(?:jobs|runs)/([A-Za-z0-9_.:-]{1,128})/events(?:/stream)?/?$]]
local CATCHUP = "/_oc/jobs/jobs/"  -- internal location: the jobs service's /newapi/
local FINAL = { completed = true, failed = true, cancelled = true }

local ERR_NO_JOB = "no such job; check the id (GET /newapi/jobs/<id> reads any state)"
local ERR_UNAVAILABLE = "the event stream is unavailable; retry shortly"

local function refusal(status, code, message)
    return errors.new(status, code, message)
end

-- The job id of a stream URI, or nil and a refusal.
function _M.job_id(uri)
    local m = re_match(uri, ROUTE, "jo")
    if not m then
        return nil, refusal(404, "job_not_found", ERR_NO_JOB)
    end
    return m[1]
end

-- The caller as the access phase decided it, for the catch-up subrequests
-- (a subrequest runs the server's `set`s again, which blank the identity).
function _M.caller()
    local var = ngx.var
    return { id = var.oc_user_id, name = var.oc_user_name, role = var.oc_user_role,
             request_id = var.oc_request_id }
end

-- In the subrequest (rewrite phase of /_oc/jobs/): the caller's identity
-- variables again, which proxy_set_header sends to the service.
function _M.restore_caller(secret)
    local caller = ngx.ctx.oc_caller
    if not caller then
        return
    end
    local var = ngx.var
    var.oc_user_id = caller.id or ""
    var.oc_user_name = caller.name or ""
    var.oc_user_role = caller.role or ""
    var.oc_request_id = caller.request_id or ""
    var.oc_gateway_secret = secret
end

local function catch_up(s)
    return ngx.location.capture(CATCHUP .. s.job_id .. "/events/stream",
        { args = { after = s.last }, ctx = { oc_caller = s.caller } })
end

-- A stream: subscribed, with the first catch-up in hand; or nil and either
-- a refusal ({status, code, message}) or the service's own error answer
-- ({status, body}).
function _M.open(job_id, after, caller)
    local red, err = store.connect()
    if not red then
        ngx.log(ngx.ERR, "job events: ", err)
        return nil, refusal(503, "stream_unavailable", ERR_UNAVAILABLE)
    end
    local res
    res, err = red:subscribe(keys.jobs_events_channel(job_id))
    if not res or res[1] ~= "subscribe" then
        red:close()
        ngx.log(ngx.ERR, "job events: subscribe: ", err)
        return nil, refusal(503, "stream_unavailable", ERR_UNAVAILABLE)
    end
    local s = { red = red, job_id = job_id, last = after or "", caller = caller }
    local first = catch_up(s)
    if first.status ~= ngx.HTTP_OK then
        red:close()
        return nil, { status = first.status, body = first.body, headers = first.header }
    end
    s.first = first
    red:set_timeout(TICK * 1000)
    return s
end

-- Print a catch-up answer; true when it ended the stream ("event: end").
local function relay_catch_up(s, res)
    local last = res.header["X-Events-Next"]
    if last and last ~= "" then
        s.last = last
    end
    local ok = print(res.body)
    if not ok or not flush(false) then
        return true
    end
    s.wrote = now()
    return res.header["X-Events-Done"] == "1"
end

-- The job's state in Redis: a state, false (no hash: finished and recorded,
-- or deleted), or nil (Redis error).
local function state(job_id)
    local value, err = store.call("hget", keys.jobs_job(job_id), "state")
    if value == nil then
        ngx.log(ngx.WARN, "job events: state of ", job_id, ": ", err)
    end
    return value
end

-- A stream that will not be relayed after all (its Redis connection closed).
function _M.close(s)
    s.red:close()
end

-- Once the headers are out: the catch-up, then live events until the job
-- ends, the client leaves or Redis fails; the connection is closed.
function _M.relay(s)
    local red = s.red
    local finished = relay_catch_up(s, s.first)
    s.first = nil
    local next_check = 0
    while not finished do
        local res, err = red:read_reply()
        if res then
            if res[1] == "message" then
                local payload = res[3]
                local id = sub(payload, 8, 20) -- '{"id":"001-000000005",...'
                if id > s.last then
                    s.last = id
                    local ok = print("id: ", id, "\ndata: ", payload, "\n\n")
                    if not ok or not flush(false) then
                        break
                    end
                    s.wrote = now()
                end
            end
        elseif err ~= "timeout" then
            ngx.log(ngx.WARN, "job events of ", s.job_id, " end: redis ", err)
            break
        end
        local t = now()
        if t >= next_check then
            local st = state(s.job_id)
            if st == false or FINAL[st] then
                local tail = catch_up(s)
                if tail.status ~= ngx.HTTP_OK then
                    break -- deleted meanwhile, or the service is down: the client reconnects
                end
                finished = relay_catch_up(s, tail)
                next_check = t + RECHECK
            else
                next_check = t + TICK
            end
        end
        if not finished and t - s.wrote >= KEEPALIVE then
            local ok = print(": keep-alive\n\n")
            if not ok or not flush(false) then
                break
            end
            s.wrote = t
        end
    end
    red:close()
end

return _M
