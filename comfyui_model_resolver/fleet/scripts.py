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
    control  HASH  job id -> pause | cancel | cancel-keep, for the host that holds the lease
    queue    STREAM of {job: id}, consumer group "hosts": hands each queued job to one host
    finished ZSET  job id -> when it ended (history is trimmed to HISTORY jobs)
    epoch    STRING a token set when the keys are first made: a new one means Redis lost its data
"""
from __future__ import annotations

__all__ = ["KEY_NAMES", "HISTORY", "SUBMIT", "TAKE", "DISPATCH", "RENEW", "SAVE", "CONTROL", "REAP"]

KEY_NAMES = ("rec", "state", "host", "pathof", "paths", "leases", "control", "queue", "finished", "epoch")
HISTORY = 500

_PRELUDE = """
local K_REC, K_STATE, K_HOST, K_PATHOF, K_PATHS, K_LEASES, K_CONTROL, K_QUEUE, K_FINISHED, K_EPOCH =
  KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8], KEYS[9], KEYS[10]
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
  redis.call('HDEL', K_CONTROL, id)
  if state == 'completed' or state == 'cancelled' then release_path(id) end
  if not LIVE[state] then
    redis.call('ZADD', K_FINISHED, now_ms(), id)
    local extra = redis.call('ZCARD', K_FINISHED) - %d
    if extra > 0 then
      local popped = redis.call('ZPOPMIN', K_FINISHED, extra)
      for i = 1, #popped, 2 do  -- member, score, member, score, ...
        local old = popped[i]
        redis.call('HDEL', K_REC, old); redis.call('HDEL', K_STATE, old); redis.call('HDEL', K_HOST, old)
        redis.call('HDEL', K_PATHOF, old)
      end
    end
  end
end
-- queued, not leased, and under the fleet cap: lease it to `me`. 1 granted, 0 not takeable, -1 capped
local function take(id, me, lease_ms, cap)
  if redis.call('HGET', K_STATE, id) ~= 'queued' then return 0 end
  if redis.call('ZSCORE', K_LEASES, id) then return 0 end
  if cap > 0 and redis.call('ZCARD', K_LEASES) >= cap then return -1 end
  redis.call('ZADD', K_LEASES, now_ms() + lease_ms, id)
  redis.call('HSET', K_HOST, id, me)
  return 1
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

#: ARGV: id, host, lease ms, fleet cap (0: none). Returns 1 / 0 / -1 (see `take`).
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

#: ARGV: host, lease ms, then job ids. Returns {held, control} per id: held 1 when the lease was
#: still this host's and is extended, 0 when it is not (another host took the job over).
RENEW = _PRELUDE + """
local me, lease_ms = ARGV[1], tonumber(ARGV[2])
local out = {}
local until_ms = now_ms() + lease_ms
for i = 3, #ARGV do
  local id = ARGV[i]
  local held = 0
  if redis.call('HGET', K_HOST, id) == me and redis.call('ZSCORE', K_LEASES, id) then
    redis.call('ZADD', K_LEASES, 'XX', until_ms, id)
    held = 1
  end
  out[#out + 1] = held
  out[#out + 1] = redis.call('HGET', K_CONTROL, id) or ''
end
return out
"""

#: ARGV: id, record JSON, state, target key, host, requeue (1/0), hold (1/0), lease ms. Written when this
#: host holds the lease or nobody does; refused (0) when another host holds it. A state that is no
#: longer active ends the lease; `requeue` puts a queued job back on the queue for any host (a
#: host shutting down hands its jobs over); `hold` leases an unleased active job to this host
#: (a job it kept running while Redis was away).
SAVE = _PRELUDE + """
local id, state, key, me = ARGV[1], ARGV[3], ARGV[4], ARGV[5]
local leased = redis.call('ZSCORE', K_LEASES, id)
if leased and redis.call('HGET', K_HOST, id) ~= me then return 0 end
redis.call('HSET', K_REC, id, ARGV[2])
redis.call('HSET', K_STATE, id, state)
if key ~= '' then
  redis.call('HSET', K_PATHOF, id, key)
  if LIVE[state] and not redis.call('HGET', K_PATHS, key) then redis.call('HSET', K_PATHS, key, id) end
end
if not ACTIVE[state] then
  finish(id, state)
elseif ARGV[6] == '1' and state == 'queued' then
  redis.call('ZREM', K_LEASES, id)
  redis.call('XADD', K_QUEUE, '*', 'job', id)
elseif ARGV[7] == '1' and not leased then
  redis.call('ZADD', K_LEASES, now_ms() + tonumber(ARGV[8]), id)
  redis.call('HSET', K_HOST, id, me)
end
return 1
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
  redis.call('HSET', K_STATE, id, 'cancelled'); finish(id, 'cancelled'); return 'cancelled'
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
    redis.call('HSET', K_STATE, id, 'cancelled'); finish(id, 'cancelled')
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
