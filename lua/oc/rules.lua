-- The bucket admission rule (BRIEF 3), pure: the same cases as
-- object_challenge/buckets/rules.py (tests/cases/bucket_rules.json).
--
-- For user u and name b, M = the prefixes b starts with:
--   forbidden = some p in M has (u, p, false)
--   mine      = some p in M has (u, p, true)
--   others    = some p in M has (u', p, true), u' ~= u
--   allowed   = not forbidden and (not others or mine)
local sub = string.sub
local type = type
local ipairs = ipairs

local _M = {}

-- {"prefixes": [...], "grants": [[user_id, prefix, allowed], ...]}
-- -> the grants of each prefix, and the distinct prefix lengths (one
--    lookup per length).  As in rules.py, M is taken over the prefixes
--    that have grants; a prefix nobody holds changes no decision.
function _M.compile(doc)
    if type(doc) ~= "table" or type(doc.grants) ~= "table" then
        return nil, "rules: a grants list expected"
    end
    local set, lengths, seen = {}, {}, {}
    for _, g in ipairs(doc.grants) do
        if type(g) ~= "table" or type(g[2]) ~= "string" then
            return nil, "rules: a grant is not [user_id, prefix, allowed]"
        end
        local p = g[2]
        local list = set[p]
        if not list then
            list = {}
            set[p] = list
            if not seen[#p] then
                seen[#p] = true
                lengths[#lengths + 1] = #p
            end
        end
        list[#list + 1] = { g[1], g[3] == true }
    end
    return { grants = set, lengths = lengths }
end

function _M.admit(compiled, user_id, name)
    local forbidden, mine, others = false, false, false
    local grants, lengths = compiled.grants, compiled.lengths
    for i = 1, #lengths do
        local list = grants[sub(name, 1, lengths[i])]
        if list then
            for j = 1, #list do
                local g = list[j]
                if g[1] == user_id then
                    if g[2] then mine = true else forbidden = true end
                elseif g[2] then
                    others = true
                end
            end
        end
    end
    return not forbidden and (not others or mine)
end

return _M
