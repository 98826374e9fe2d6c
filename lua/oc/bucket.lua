-- POST /bucket at the edge (after auth): 400 for a bad body or name,
-- 403 when the rule refuses; allowed requests go on to the storage service.
-- Without a snapshot the api service decides (never allow by default).
local cjson = require "cjson.safe"
local errors = require "oc.errors"
local names = require "oc.names"
local rules = require "oc.rules"
local snapshot = require "oc.snapshot"

local ngx = ngx
local type = type
local find = string.find

local _M = {}

-- reasons and messages as object_challenge/buckets/service.py words them
local NOT_JSON = 'the body must be JSON: {"bucket": "<name>"}'

local function invalid(reason)
    return errors.exit(400, "invalid_bucket", reason, { result = "invalid", reason = reason })
end

-- The bucket name from the request body, or nil and the reason.
function _M.name_from_body()
    ngx.req.read_body()
    local body = ngx.req.get_body_data()
    if not body then
        return nil, NOT_JSON
    end
    local doc = cjson.decode(body)
    if doc == nil then
        return nil, NOT_JSON
    end
    if type(doc) ~= "table" or not find(body, "^%s*{") then
        return nil, 'the body must be a JSON object: {"bucket": "<name>"}'
    end
    local name = doc.bucket
    if name == nil then
        return nil, "the body has no 'bucket' field"
    end
    if type(name) ~= "string" then
        return nil, "'bucket' must be a string"
    end
    return name
end

-- "allow" (the location proxies it to storage) or "ask_api" (no snapshot:
-- the api service decides); a refusal ends the request here.
function _M.decide(ident)
    local name, reason = _M.name_from_body()
    if not name then
        return invalid(reason)
    end
    local ok
    ok, reason = names.check(name)
    if not ok then
        return invalid(reason)
    end
    local compiled = snapshot.rules()
    if not compiled then
        return "ask_api"
    end
    if not rules.admit(compiled, ident.user_id, name) then
        return errors.exit(403, "not_allowed", "you may not create '" .. name
            .. "': its prefix is reserved; ask an operator for a grant",
            { result = "not allowed" })
    end
    return "allow"
end

return _M
