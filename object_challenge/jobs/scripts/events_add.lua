-- events_add.lua: append a batch of events to a running job's stream (a post of its lease holder).
-- KEYS[1] job hash  KEYS[2] events stream  KEYS[3] events meta hash  KEYS[4] events index (set of job ids)
-- ARGV[1] job id  ARGV[2] worker id ('' when the post named none)  ARGV[3] attempt of the post
-- ARGV[4] max events per job  ARGV[5] max bytes per job  ARGV[6] the job's pub/sub channel
-- ARGV[7], ARGV[8], ... pairs: seq ('' = one past the attempt's last) and the event's JSON
--   without its opening brace (Python builds '"attempt":1,"type":"stdout","data":...,"at":"..."}')
-- An event's id is '<attempt, 3 digits>-<seq, 9 digits>' (stream entry id attempt-seq), so ids
-- sort as strings; an event whose id is not past the stream's last is a retry: skipped.
-- returns JSON {"accepted": k, "duplicates": d, "last_id": id or "", "truncated": bool}
--   or {"refused": "unknown" | "not_running" | "not_holder" | "attempt" | "cancelled", "state",
--   "worker", "attempt"}
local f = redis.call('HMGET', KEYS[1], 'state', 'worker', 'attempt', 'cancel_requested')
local state, holder, current = f[1], f[2] or '', tonumber(f[3]) or 0
local worker, attempt = ARGV[2], tonumber(ARGV[3])
local function refuse(why)
  return cjson.encode({refused = why, state = state or '', worker = holder, attempt = current})
end
if not state then return refuse('unknown') end
if state ~= 'running' then return refuse('not_running') end
if holder ~= '' and holder ~= worker then return refuse('not_holder') end
if attempt ~= current then return refuse('attempt') end
if f[4] == '1' then return refuse('cancelled') end

local m = redis.call('HMGET', KEYS[3], 'count', 'bytes', 'last', 'truncated')
local count, bytes, last = tonumber(m[1]) or 0, tonumber(m[2]) or 0, m[3] or ''
local truncated = m[4] == '1'
local last_attempt, last_seq = 0, -1
if last ~= '' then
  local a, s = string.match(last, '^(%d+)-(%d+)$')
  last_attempt, last_seq = tonumber(a), tonumber(s)
end
local max_count, max_bytes = tonumber(ARGV[4]), tonumber(ARGV[5])
local accepted, duplicates, over = 0, 0, false
for i = 7, #ARGV, 2 do
  local seq
  if ARGV[i] == '' then
    seq = (last_attempt == attempt) and last_seq + 1 or 0
  else
    seq = tonumber(ARGV[i])
  end
  if last_attempt > attempt or (last_attempt == attempt and seq <= last_seq) then
    duplicates = duplicates + 1
  else
    local id = string.format('%03d-%09d', attempt, seq)
    local json = '{"id":"' .. id .. '",' .. ARGV[i + 1]
    if truncated or count + 1 > max_count or bytes + #json > max_bytes then
      over = true
      break
    end
    redis.call('XADD', KEYS[2], attempt .. '-' .. seq, 'e', json)
    redis.call('PUBLISH', ARGV[6], json)
    count, bytes, last, last_attempt, last_seq = count + 1, bytes + #json, id, attempt, seq
    accepted = accepted + 1
  end
end
if accepted > 0 then
  redis.call('HSET', KEYS[3], 'count', count, 'bytes', bytes, 'last', last)
  redis.call('SADD', KEYS[4], ARGV[1])
end
if over and not truncated then
  redis.call('HSET', KEYS[3], 'truncated', '1')
  redis.call('SADD', KEYS[4], ARGV[1])
end
return cjson.encode({accepted = accepted, duplicates = duplicates, last_id = last, truncated = over})
