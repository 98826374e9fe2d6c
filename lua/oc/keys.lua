-- Every Redis key the gateway reads or writes, and every shared-dict key,
-- is built here. Redis keys are oc:<service>:<thing>[:<id>...], the twins
-- of object_challenge/core/keys.py (gateway snapshot) and
-- object_challenge/publish/keys.py (puzzle boards); tests/gateway runs this
-- module and compares (tests/cases/moves.json holds the script key orders).
local concat = table.concat
local select = select

local _M = {}

local function key(...)
    local parts = { "oc", ... }
    for i = 2, select("#", ...) + 1 do
        parts[i] = tostring(parts[i])
    end
    return concat(parts, ":")
end

_M.key = key

-- the snapshot object_challenge/accounts/snapshot.py publishes
_M.tokens = key("gw", "tokens")     -- hash: sha256hex(token) -> identity JSON
_M.rules = key("gw", "rules")       -- string: {"prefixes": [...], "grants": [...]}
_M.version = key("gw", "version")   -- string (INCR), bumped last

-- the publish service's boards (one puzzle's keys share the meta key as stem)
_M.pub_scripts = key("pub", "scripts") -- hash: script SHA1s and their settings
_M.pub_dirty = key("pub", "dirty")     -- zset: puzzles not yet written back
_M.pub_stats = key("pub", "stats")     -- hash: token/move outcomes counted by the scripts

function _M.pub_meta(puzzle)
    return key("pub", "puzzle", puzzle)
end

function _M.pub_channel(puzzle)
    return key("pub", "puzzle", puzzle, "channel")
end

-- KEYS of publish/scripts/token.lua, in its order
function _M.token_keys(puzzle, piece, player)
    local s = _M.pub_meta(puzzle)
    return { s, s .. ":pieces", s .. ":lock:" .. piece, s .. ":token:" .. piece, s .. ":ban:" .. player,
             _M.pub_stats }
end

-- KEYS of publish/scripts/move.lua, in its order
function _M.move_keys(puzzle, piece, player)
    local s = _M.pub_meta(puzzle)
    return { s, s .. ":pieces", s .. ":groups", s .. ":updates", s .. ":token:" .. piece,
             s .. ":lock:" .. piece, s .. ":rate:" .. player, s .. ":ban:" .. player, _M.pub_dirty,
             _M.pub_stats }
end

-- the job queue's (twins of object_challenge/jobs/keys.py)
function _M.jobs_job(job_id)
    return key("jobs", "job", job_id)             -- hash: the live job (state, ...)
end

function _M.jobs_events_channel(job_id)
    return key("jobs", "events-channel", job_id)  -- pub/sub: each stored event's JSON
end

_M.jobs_gateway = key("jobs", "gateway")          -- hash: poll/complete SHA1s and settings

function _M.jobs_queue(name)
    return key("jobs", "queue", name)             -- list: waiting job ids, head first
end

function _M.jobs_queue_attributes(name)
    return key("jobs", "queue-attrs", name)       -- hash: disabled, ...
end

function _M.jobs_worker_attributes(worker_id)
    return key("jobs", "worker-attrs", worker_id) -- hash: disabled, ...
end

-- shared dicts (gateway-local)
function _M.token_cache(version, token)
    return "t:" .. version .. ":" .. token
end

function _M.limit(scope, id)
    return "l:" .. scope .. ":" .. id
end

-- shared dict oc_streams: open SSE streams of a user
function _M.streams(user_id)
    return "s:" .. user_id
end

function _M.cache_gen(path)
    return "g:" .. path
end

function _M.cache_entry(gen, scope, uri)
    return "c:" .. gen .. ":" .. scope .. ":" .. uri
end

function _M.cache_lock(entry_key)
    return "lock:" .. entry_key
end

return _M
