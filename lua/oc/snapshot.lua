-- Follows the tokens+grants snapshot that object_challenge/accounts/snapshot.py
-- publishes: every SNAPSHOT_POLL_SECONDS each worker GETs oc:gw:version and,
-- when it moved, reloads oc:gw:rules.  The version is part of every token
-- cache key, so a new version also drops every cached identity.  A change
-- therefore reaches the edge within one poll interval plus one Redis round
-- trip (0.5 s by default; the documented bound is 2 s).
--
-- No version in Redis, or Redis unreachable for STALE_AFTER seconds: no
-- snapshot, and the gateway asks the api service instead (never allows).
local cjson = require "cjson.safe"
local keys = require "oc.keys"
local rules = require "oc.rules"
local settings = require "oc.settings"
local store = require "oc.store"

local ngx = ngx
local log = ngx.log
local WARN, ERR = ngx.WARN, ngx.ERR

local STALE_AFTER = 2

local _M = {}

local state = { version = nil, rules = nil, last_ok = 0, down = false }
local reset_hooks = {}

-- fn() runs when the snapshot goes away or its version goes backwards
-- (Redis wiped and republished): caches keyed by version must be flushed,
-- since the old numbers come round again.
function _M.on_reset(fn)
    reset_hooks[#reset_hooks + 1] = fn
end

local function reset()
    for i = 1, #reset_hooks do
        reset_hooks[i]()
    end
end

function _M.version()
    return state.version
end

-- ngx.now() of the follower's last successful read of the version (0: never).
function _M.last_ok()
    return state.last_ok
end

function _M.rules()
    return state.rules
end

local function drop(why)
    if state.version then
        log(WARN, "snapshot dropped (", why, "); deciding through the api service")
        state.version, state.rules = nil, nil
        reset()
    end
end

local function load(red)
    local res, err = red:mget(keys.version, keys.rules)
    if not res then
        return nil, err
    end
    local version, raw = res[1], res[2]
    if version == ngx.null then
        return false
    end
    if raw == ngx.null then
        return nil, keys.rules .. " missing while " .. keys.version .. " is set"
    end
    local doc
    doc, err = cjson.decode(raw)
    if not doc then
        return nil, "rules json: " .. err
    end
    local compiled
    compiled, err = rules.compile(doc)
    if not compiled then
        return nil, err
    end
    local old = tonumber(state.version)
    if old and (tonumber(version) or 0) < old then
        reset()
    end
    state.version, state.rules = version, compiled
    return true
end

function _M.poll()
    local red, err = store.connect()
    local version
    if red then
        version, err = red:get(keys.version)
    end
    if not version then
        if red then red:close() end
        if not state.down then
            log(ERR, "snapshot poll: ", err)
            state.down = true
        end
        if ngx.now() - state.last_ok > STALE_AFTER then
            drop("redis unreachable")
        end
        return nil, err
    end
    state.down = false
    state.last_ok = ngx.now()
    if version == ngx.null then
        store.release(red)
        drop(keys.version .. " absent")
        return false
    end
    if version ~= state.version then
        local ok
        ok, err = load(red)
        if ok == nil then
            red:close()
            log(ERR, "snapshot load: ", err)
            drop("unreadable")
            return nil, err
        end
        if ok == false then
            drop(keys.version .. " absent")
        end
    end
    store.release(red)
    return state.version
end

local function tick(premature)
    if premature then
        return
    end
    local ok, err = pcall(_M.poll)
    if not ok then
        log(ERR, "snapshot poll failed: ", err)
    end
end

function _M.start()
    local every = settings.get().snapshot_poll
    ngx.timer.at(0, tick)
    local ok, err = ngx.timer.every(every, tick)
    if not ok then
        log(ERR, "snapshot follower not started: ", err)
    end
end

return _M
