-- take.lua: reserve the next call slot on the API key that can call soonest (GCRA token bucket,
-- shared by every process that uses the same Redis: they all stay under the key's rate together).
-- KEYS[1..n] one per API key: oc:campaigns:rate:<digest> (STRING: theoretical arrival time, µs)
-- ARGV[1] emission interval in µs (1e6 / calls per second)
-- ARGV[2] burst: calls allowed back to back (>= 1)
-- ARGV[3] longest wait in µs a caller accepts; a later slot is not reserved
-- returns {i, wait_us}: the i-th key (1-based) is reserved, call it after wait_us;
--         {0, wait_us}: nothing reserved, the soonest slot is wait_us away (ask again then)
local interval = tonumber(ARGV[1])
local tolerance = (tonumber(ARGV[2]) - 1) * interval
local max_wait = tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])

local best, best_wait, best_tat = 0, nil, nil
for i = 1, #KEYS do
  local tat = tonumber(redis.call('GET', KEYS[i]) or 0)
  if tat < now then tat = now end
  local wait = tat - tolerance - now
  if wait < 0 then wait = 0 end
  if best_wait == nil or wait < best_wait then
    best, best_wait, best_tat = i, wait, tat
  end
end

if best_wait > max_wait then return {0, best_wait} end
local new_tat = best_tat + interval
-- the key only matters until its slots are in the past: let it expire then
redis.call('SET', KEYS[best], string.format('%d', new_tat), 'PX', math.floor((new_tat - now) / 1000) + 1000)
return {best, best_wait}
