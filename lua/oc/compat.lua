-- Library names differ between the OpenResty image (resty.*) and Debian's
-- packages (nginx.*); everything else requires them through here.
local _M = {}

local function either(a, b)
    local ok, mod = pcall(require, a)
    if ok then
        return mod
    end
    return require(b)
end

_M.redis = either("resty.redis", "nginx.redis")
_M.sha256 = either("resty.sha256", "nginx.sha256")
_M.str = either("resty.string", "nginx.string")
_M.random = either("resty.random", "nginx.random")

function _M.sha256_hex(s)
    local h = _M.sha256:new()
    h:update(s)
    return _M.str.to_hex(h:final())
end

return _M
