-- Open SSE streams per user (puzzle updates and job events together):
-- a count in the oc_streams shared dict, taken when a stream starts and
-- given back when it ends (oc.gateway's sse closes it on every way out:
-- the relay's end, an error, the client's abort). Past STREAMS_PER_USER
-- the stream is refused with a 429. Counting is per nginx instance.
local errors = require "oc.errors"
local keys = require "oc.keys"
local settings = require "oc.settings"

local ngx = ngx

local _M = {}

local ERR_TOO_MANY = "too many open streams for this user (%d); close one first"

local dict = ngx.shared.oc_streams

-- A slot (the dict key to give back with close), or nil and the 429.
function _M.open(user_id)
    local cap = settings.get().streams_per_user
    local slot = keys.streams(user_id)
    local n, err = dict:incr(slot, 1, 0)
    if not n then
        -- the dict is full: count nothing rather than refuse everyone
        ngx.log(ngx.ERR, "streams: ", err)
        return false
    end
    if n > cap then
        dict:incr(slot, -1, 0)
        return nil, errors.new(429, "too_many_streams", ERR_TOO_MANY:format(cap),
            { ["Retry-After"] = "5" }, { limit = cap })
    end
    return slot
end

function _M.close(slot)
    if slot then
        local n = dict:incr(slot, -1, 0)
        if n and n <= 0 then
            dict:delete(slot)
        end
    end
end

-- Open streams of a user (tests, /healthz).
function _M.count(user_id)
    return dict:get(keys.streams(user_id)) or 0
end

return _M
