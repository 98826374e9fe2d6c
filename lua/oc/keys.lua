-- Every Redis key the gateway reads, and every shared-dict key it writes,
-- is built here (the Python side: object_challenge/snapshot.py).
local _M = {}

-- Redis (published by object_challenge/snapshot.py)
_M.tokens = "oc:gw:tokens"     -- hash: sha256hex(token) -> identity JSON
_M.rules = "oc:gw:rules"       -- string: {"prefixes": [...], "grants": [...]}
_M.version = "oc:gw:version"   -- string (INCR), bumped last

-- the job queue's (twins of object_challenge/jobs/keys.py)
function _M.jobs_job(job_id)
    return "oc:jobs:job:" .. job_id              -- hash: the live job (state, ...)
end

function _M.jobs_events_channel(job_id)
    return "oc:jobs:events-channel:" .. job_id   -- pub/sub: each stored event's JSON
end

-- shared dicts (gateway-local)
function _M.token_cache(version, token)
    return "t:" .. version .. ":" .. token
end

function _M.limit(scope, id)
    return "l:" .. scope .. ":" .. id
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
