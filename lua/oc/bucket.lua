-- POST /bucket at the edge (after auth): 400 for a bad body or name,
-- 403 when the rule refuses; allowed requests go on to the storage service.
-- Without a snapshot the api service decides (never allow by default).
-- Pure: the gateway hands in the body and the compiled rules.
local cjson = require "cjson.safe"
local errors = require "oc.errors"
local names = require "oc.names"
local rules = require "oc.rules"

local type = type
local find = string.find

local _M = {}

-- reasons and messages as object_challenge/buckets/service.py words them
local NOT_JSON = 'the body must be JSON: {"bucket": "<name>"}'
local NOT_OBJECT = 'the body must be a JSON object: {"bucket": "<name>"}'
local NO_FIELD = "the body has no 'bucket' field"
local NOT_STRING = "'bucket' must be a string"
local ERR_NOT_ALLOWED = "you may not create '%s': its prefix is reserved; ask an operator for a grant"

local function invalid(reason)
    return nil, errors.new(400, "invalid_bucket", reason, nil, { result = "invalid", reason = reason })
end

-- The bucket name from the request body, or nil and the reason.
function _M.name_from_body(body)
    if not body then
        return nil, NOT_JSON
    end
    local doc = cjson.decode(body)
    if doc == nil then
        return nil, NOT_JSON
    end
    if type(doc) ~= "table" or not find(body, "^%s*{") then
        return nil, NOT_OBJECT
    end
    local name = doc.bucket
    if name == nil then
        return nil, NO_FIELD
    end
    if type(name) ~= "string" then
        return nil, NOT_STRING
    end
    return name
end

-- "allow" (the location proxies it to storage) or "ask_api" (no snapshot:
-- compiled is nil, the api service decides), or nil and the refusal.
function _M.decide(ident, body, compiled)
    local name, reason = _M.name_from_body(body)
    if not name then
        return invalid(reason)
    end
    local ok
    ok, reason = names.check(name)
    if not ok then
        return invalid(reason)
    end
    if not compiled then
        return "ask_api"
    end
    if not rules.admit(compiled, ident.user_id, name) then
        return nil, errors.new(403, "not_allowed", ERR_NOT_ALLOWED:format(name), nil, { result = "not allowed" })
    end
    return "allow"
end

return _M
