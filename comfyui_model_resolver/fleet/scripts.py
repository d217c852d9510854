"""The fleet queue's Redis scripts (Lua, run atomically by Redis).

Every script takes the volume's keys in one fixed order (`KEYS`), so all keys share one hash tag
(``cmr:{<volume>}:…``) and the scripts also run on a Redis Cluster. Time always comes from
Redis (`TIME`), never from a host: leases survive clock skew between hosts.

Keys, for one volume:
    rec      HASH  job id -> the job record as JSON (written by Python only)
    state    HASH  job id -> queued | running | verifying | paused | failed | completed | cancelled
    host     HASH  job id -> the host that holds (or last held) its lease
    pathof   HASH  job id -> its target key (the final path)
    paths    HASH  target key -> the id of the live job for it (one download per file per volume)
    leases   ZSET  job id -> when its lease expires (Redis milliseconds)
    fence    HASH  job id -> the fencing token of its latest lease (grows by one per lease granted)
    prio     HASH  job id -> a new priority asked by another host, for the host that holds the lease
    control  HASH  job id -> pause | cancel | cancel-keep, for the host that holds the lease; for a
                   cancelled job, how it was cancelled (cancel-keep keeps the part file)
    queue    STREAM of {job: id}, consumer group "hosts": hands each queued job to one host
    finished ZSET  job id -> when it ended (history is trimmed to HISTORY jobs)
    epoch    STRING a token set when the keys are first made: a new one means Redis lost its data

Fencing: every lease granted gets a new token (`fence`). The host that holds it passes the token
with each checkpoint (SAVE) and right before it renames the finished file into place (FENCE); both
are compare-and-extend: refused, with the reason, once the lease ran out and was reaped, went to
another host, or the job was cancelled. A host that stalled past its lease can therefore never
record progress over another host's, nor put a cancelled job's file in place.
"""
from __future__ import annotations

__all__ = ["KEY_NAMES", "HISTORY", "SUBMIT", "TAKE", "DISPATCH", "RENEW", "SAVE", "FENCE", "CONTROL", "PRIORITY", "REAP"]

KEY_NAMES = ("rec", "state", "host", "pathof", "paths", "leases", "control", "queue", "finished", "epoch", "fence", "prio")
HISTORY = 500

_PRELUDE = """
local K_REC, K_STATE, K_HOST, K_PATHOF, K_PATHS, K_LEASES, K_CONTROL, K_QUEUE, K_FINISHED, K_EPOCH, K_FENCE, K_PRIO =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10], KEYS[11], KEYS[12]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local ACTIVE = {queued = true, running = true, verifying = true}
local LIVE = {queued = true, running = true, verifying = true, paused = true, failed = true}
local function release_path(id)
  local key = redis.call('HGET', K_PATHOF, id)
  if key and redis.call('HGET', K_PATHS, key) == id then redis.call('HDEL', K_PATHS, key) end
end
local function finish(id, state)
  redis.call('ZREM', K_LEASES, id)
  redis.call('HDEL', K_CONTROL, id); redis.call('HDEL', K_PRIO, id)
  if state == 'completed' or state == 'cancelled' then release_path(id) end
  if not LIVE[state] then
    redis.call('ZADD', K_FINISHED, now_ms(), id)
    local extra = redis.call('ZCARD', K_FINISHED) - %d
    if extra > 0 then
      local popped = redis.call('ZPOPMIN', K_FINISHED, extra)
      for i = 1, #popped, 2 do  -- member, score, member, score, ...
        local old = popped[i]
        redis.call('HDEL', K_REC, old); redis.call('HDEL', K_STATE, old); redis.call('HDEL', K_HOST, old)
        redis.call('HDEL', K_PATHOF, old); redis.call('HDEL', K_CONTROL, old); redis.call('HDEL', K_FENCE, old)
      end
    end
  end
end
local function cancel(id, how)  -- how: cancel | cancel-keep, remembered for a host that lost the job
  redis.call('HSET', K_STATE, id, 'cancelled'); finish(id, 'cancelled'); redis.call('HSET', K_CONTROL, id, how)
end
-- a new lease for `me`; returns its fencing token
local function grant(id, me, lease_ms)
  redis.call('ZADD', K_LEASES, now_ms() + lease_ms, id)
  redis.call('HSET', K_HOST, id, me)
  return redis.call('HINCRBY', K_FENCE, id, 1)
end
-- does `me` hold the job's lease under `token` (a lease that ran out but was not reaped yet still counts:
-- nobody else can have it)
local function holds(id, me, token)
  return redis.call('ZSCORE', K_LEASES, id) and redis.call('HGET', K_HOST, id) == me
    and redis.call('HGET', K_FENCE, id) == token
end
-- why a host no longer holds a job: cancel | cancel-keep | pause | completed | lost (queued again or
-- another host's)
local function why(id)
  local st = redis.call('HGET', K_STATE, id)
  if st == 'cancelled' then return redis.call('HGET', K_CONTROL, id) == 'cancel-keep' and 'cancel-keep' or 'cancel' end
  if st == 'paused' or st == 'completed' then return st == 'paused' and 'pause' or 'completed' end
  return 'lost'
end
-- queued, not leased, and under the fleet cap: lease it to `me`. Its token when granted, 0 not
-- takeable, -1 capped
local function take(id, me, lease_ms, cap)
  if redis.call('HGET', K_STATE, id) ~= 'queued' then return 0 end
  if redis.call('ZSCORE', K_LEASES, id) then return 0 end
  if cap > 0 and redis.call('ZCARD', K_LEASES) >= cap then return -1 end
  return grant(id, me, lease_ms)
end
""" % HISTORY

#: ARGV: id, target key, record JSON. Returns {id, state, created}: the live job for the same
#: target when there is one (created 0), else the new queued job (created 1).
SUBMIT = _PRELUDE + """
local id, key = ARGV[1], ARGV[2]
local cur = redis.call('HGET', K_PATHS, key)
if cur then
  local st = redis.call('HGET', K_STATE, cur)
  if st and LIVE[st] then return {cur, st, 0} end
end
redis.call('HSET', K_REC, id, ARGV[3])
redis.call('HSET', K_STATE, id, 'queued')
redis.call('HSET', K_PATHOF, id, key)
redis.call('HSET', K_PATHS, key, id)
redis.call('XADD', K_QUEUE, '*', 'job', id)
return {id, 'queued', 1}
"""

#: ARGV: id, host, lease ms, fleet cap (0: none). Returns the token / 0 / -1 (see `take`).
TAKE = _PRELUDE + """
return take(ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]))
"""

#: A stream entry delivered to this host. ARGV: group, entry id, job id, host, lease ms, cap.
#: Acknowledges the entry and takes the job; a capped job goes back to the end of the queue.
DISPATCH = _PRELUDE + """
redis.call('XACK', K_QUEUE, ARGV[1], ARGV[2])
redis.call('XDEL', K_QUEUE, ARGV[2])
local got = take(ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6]))
if got == -1 then redis.call('XADD', K_QUEUE, '*', 'job', ARGV[3]) end
return got
"""

#: ARGV: host, lease ms, then (job id, token) pairs. Returns {held, detail, priority} per job: held 1
#: when the lease is still this host's under that token and is extended (detail: a pending
#: pause/cancel request, or ''; priority: a new priority another host asked for, taken, or ''),
#: 0 when it is not (detail: why, see `why`).
RENEW = _PRELUDE + """
local me, lease_ms = ARGV[1], tonumber(ARGV[2])
local out = {}
local until_ms = now_ms() + lease_ms
for i = 3, #ARGV, 2 do  -- (the renewal of a whole host: one call)
  local id = ARGV[i]
  if holds(id, me, ARGV[i + 1]) then
    redis.call('ZADD', K_LEASES, 'XX', until_ms, id)
    out[#out + 1] = 1
    out[#out + 1] = redis.call('HGET', K_CONTROL, id) or ''
    out[#out + 1] = redis.call('HGET', K_PRIO, id) or ''
    redis.call('HDEL', K_PRIO, id)
  else
    out[#out + 1] = 0
    out[#out + 1] = why(id)
    out[#out + 1] = ''
  end
end
return out
"""

#: ARGV: id, record JSON, state, target key, host, requeue (1/0), hold (1/0), lease ms, token.
#: With a token (the lease holder's checkpoints and outcomes) the write is fenced: refused unless
#: this host holds the lease under that token, and it extends the lease. Without one (records of
#: jobs this host does not run) it is refused only while another host holds the lease. A state
#: that is no longer active ends the lease; `requeue` puts a queued job back on the queue for any
#: host (a host shutting down hands its jobs over); `hold` leases an unleased active job to this
#: host (a job it kept running while Redis was away), refused when the fleet has since paused,
#: cancelled or completed it. Returns {1, token held after it (0: none)} or {0, why}.
SAVE = _PRELUDE + """
local id, state, key, me, token = ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[9]
local leased = redis.call('ZSCORE', K_LEASES, id)
if token ~= '' then
  if not holds(id, me, token) then return {0, why(id)} end
elseif leased and redis.call('HGET', K_HOST, id) ~= me then
  return {0, why(id)}
elseif ARGV[7] == '1' then
  local cur = redis.call('HGET', K_STATE, id)
  if cur and not ACTIVE[cur] then return {0, why(id)} end
end
redis.call('HSET', K_REC, id, ARGV[2])
redis.call('HSET', K_STATE, id, state)
if key ~= '' then
  redis.call('HSET', K_PATHOF, id, key)
  if LIVE[state] and not redis.call('HGET', K_PATHS, key) then redis.call('HSET', K_PATHS, key, id) end
end
local held = 0
if not ACTIVE[state] then
  finish(id, state)
elseif ARGV[6] == '1' and state == 'queued' then
  redis.call('ZREM', K_LEASES, id)
  redis.call('XADD', K_QUEUE, '*', 'job', id)
elseif token ~= '' then
  redis.call('ZADD', K_LEASES, 'XX', now_ms() + tonumber(ARGV[8]), id)
  held = tonumber(token)
elseif ARGV[7] == '1' then
  if leased then held = tonumber(redis.call('HGET', K_FENCE, id) or '0')
  else held = grant(id, me, tonumber(ARGV[8])) end
end
return {1, held}
"""

#: The fence before a finished file is renamed into place. ARGV: id, host, token, lease ms.
#: Compare-and-extend: {1, ''} when this host holds the lease under that token (extended by a
#: whole lease, so the rename that follows happens inside it); else {0, why}. A pending cancel
#: is applied here, atomically, and refuses too: a cancelled job's file is never put in place.
FENCE = _PRELUDE + """
local id, me = ARGV[1], ARGV[2]
if not holds(id, me, ARGV[3]) then return {0, why(id)} end
local ctl = redis.call('HGET', K_CONTROL, id)
if ctl == 'cancel' or ctl == 'cancel-keep' then cancel(id, ctl); return {0, ctl} end
redis.call('ZADD', K_LEASES, 'XX', now_ms() + tonumber(ARGV[4]), id)
return {1, ''}
"""

#: ARGV: id, action (pause | resume | cancel | cancel-keep). A leased job gets the request in
#: `control` for its host ("sent"); otherwise the state changes here. Returns the outcome:
#: sent | the new state | the unchanged state | unknown.
CONTROL = _PRELUDE + """
local id, action = ARGV[1], ARGV[2]
local st = redis.call('HGET', K_STATE, id)
if not st then return 'unknown' end
if redis.call('ZSCORE', K_LEASES, id) then
  if action ~= 'resume' then redis.call('HSET', K_CONTROL, id, action); return 'sent' end
  return st
end
if action == 'pause' and st == 'queued' then
  redis.call('HSET', K_STATE, id, 'paused'); return 'paused'
elseif (action == 'cancel' or action == 'cancel-keep') and st ~= 'completed' and st ~= 'cancelled' then
  cancel(id, action); return 'cancelled'
elseif action == 'resume' and (st == 'paused' or st == 'failed') then
  redis.call('HSET', K_STATE, id, 'queued')
  redis.call('ZREM', K_FINISHED, id)
  local key = redis.call('HGET', K_PATHOF, id)
  if key and not redis.call('HGET', K_PATHS, key) then redis.call('HSET', K_PATHS, key, id) end
  redis.call('XADD', K_QUEUE, '*', 'job', id)
  return 'queued'
end
return st
"""

#: ARGV: id, priority. A leased job gets the new priority in `prio` for its host ("sent"); for
#: any other job the caller rewrites the record itself ("free"). Returns sent | free | unknown.
PRIORITY = _PRELUDE + """
if not redis.call('HGET', K_STATE, ARGV[1]) then return 'unknown' end
if not redis.call('ZSCORE', K_LEASES, ARGV[1]) then return 'free' end
redis.call('HSET', K_PRIO, ARGV[1], ARGV[2])
return 'sent'
"""

#: ARGV: group, host, lease ms, limit. Leases that ran out (their host died or lost Redis for a
#: whole lease) end: the job is queued again for any host, or paused / cancelled when that was
#: asked of the dead host. Stream entries delivered to a host that died before taking them are
#: queued again. Returns {epoch, requeued ids...}.
REAP = _PRELUDE + """
local group, me, lease_ms, limit = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local out = {redis.call('GET', K_EPOCH) or ''}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now_ms(), 'LIMIT', 0, limit)) do
  redis.call('ZREM', K_LEASES, id)
  local ctl = redis.call('HGET', K_CONTROL, id)
  local st = redis.call('HGET', K_STATE, id)
  if ctl == 'pause' and st and ACTIVE[st] then
    redis.call('HSET', K_STATE, id, 'paused'); redis.call('HDEL', K_CONTROL, id)
  elseif ctl and string.sub(ctl, 1, 6) == 'cancel' then
    cancel(id, ctl)
  elseif st and ACTIVE[st] then
    redis.call('HSET', K_STATE, id, 'queued')
    redis.call('XADD', K_QUEUE, '*', 'job', id)
    out[#out + 1] = id
  end
end
local stale = redis.pcall('XAUTOCLAIM', K_QUEUE, group, me, lease_ms, '0-0', 'COUNT', limit)
if stale.err then return out end  -- no stream or group yet (an empty Redis): setup() makes them
for _, entry in ipairs(stale[2]) do
  redis.call('XACK', K_QUEUE, group, entry[1])
  redis.call('XDEL', K_QUEUE, entry[1])
  if entry[2] then redis.call('XADD', K_QUEUE, '*', 'job', entry[2][2]) end
end
return out
"""
