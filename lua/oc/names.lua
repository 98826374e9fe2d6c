-- S3 bucket naming rules (the subset of issue 3), the same cases as
-- object_challenge/buckets/names.py (tests/cases/bucket_names.json).
local find = string.find
local sub = string.sub
local re_find = ngx.re.find

local _M = {}

-- true, or nil and the reason shown to the client.
function _M.check(name)
    local n = #name
    if n < 3 or n > 63 then
        return nil, "bucket names must be 3 to 63 characters long"
    end
    if find(name, "[^a-z0-9.-]") then
        return nil, "bucket names may contain only lowercase letters, digits, '-' and '.'"
    end
    if not find(sub(name, 1, 1), "[a-z0-9]") or not find(sub(name, n), "[a-z0-9]") then
        return nil, "bucket names must start and end with a letter or digit"
    end
    if find(name, "..", 1, true) then
        return nil, "bucket names must not contain two adjacent periods"
    end
    if not find(name, "[^%d.]") and re_find(name, [[^\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}$]], "jo") then
        return nil, "bucket names must not be formatted as an IP address"
    end
    if sub(name, 1, 4) == "xn--" then
        return nil, "bucket names must not start with 'xn--'"
    end
    if n >= 8 and sub(name, -8) == "-s3alias" then
        return nil, "bucket names must not end with '-s3alias'"
    end
    return true
end

return _M
