"""Every Redis key and Lua script the server uses.  Returns Python values; knows
nothing of RESP or of lifecycle rules.

Layout (all keys under one prefix, ``fk:`` by default, so FLUSH, backups and a
shared Redis stay clean):

=========================  =====  ===========================================
``queues``                 SET    known queue names
``paused``                 SET    paused queue names
``q:<name>:<p>``           LIST   jobs of priority p (1-9); LPUSH in, RPOP out
``qp:<name>``              ZSET   priorities of ``<name>`` that hold jobs
``scheduled``              ZSET   score = ``at``; member = job JSON
``retries``                ZSET   score = next retry; member = job JSON
``dead``                   ZSET   score = expiry (death + 180 days)
``working``                HASH   jid -> reservation JSON
``working:exp``            ZSET   jid scored by reservation expiry
``held:<jid>``             LIST   "<p> <queue> <job>" of copies of a jid fetched
                                  while another copy was reserved (see FETCH)
``held``                   ZSET   jids with held copies, by when last checked
``stat:processed[:day]``   STR    counters (and daily history, kept HISTORY_TTL:
``stat:failures[:day]``    STR    see ``faktory.retention``)
``wait:<name>``            STR    set (3 s TTL) while some server has a FETCH
                                  waiting on the queue; PUSH publishes only then
``notify``                 chan   pub/sub channel carrying ``<origin> <queue>``
``throttle:conf``          HASH   queue -> "concurrency timeout worker rate period"
                                  (written by ``faktory.pro.throttle``)
``throttle:<q>``           ZSET   jids holding a concurrency slot, by lock expiry
``throttle:<q>:w:<wid>``   ZSET   the same, per worker process
``throttle:<q>:r:<n>``     STR    jobs fetched in rate window n (TTL: the period)
``throttle:held``          HASH   jid -> "<queue> <wid>" of a job holding slots
=========================  =====  ===========================================

FETCH walks the requested queues in order and pops from the highest non-empty
priority: O(log 9) per job, FIFO within a priority, nothing scanned.  Every
transition is one script, so two servers sharing a Redis cannot both take a
job or lose one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from typing import Any

import txredisapi
from twisted.internet import defer
from twisted.logger import Logger

from .errors import gather
from .namespace import glob_escape
from .redisconn import connect  # noqa: F401 - it lived here; kept importable

log = Logger()

_ENQUEUE_LUA = """
local function enqueue(p, q, pri, job, origin)
  redis.call('SADD', p .. 'queues', q)
  redis.call('LPUSH', p .. 'q:' .. q .. ':' .. pri, job)
  redis.call('ZADD', p .. 'qp:' .. q, pri, pri)
  if redis.call('EXISTS', p .. 'wait:' .. q) == 1 then
    redis.call('PUBLISH', p .. 'notify', origin .. ' ' .. q)
  end
end
"""

# Queue throttles (faktory.pro.throttle configures them).  FETCH checks a
# queue's limits and takes a slot in the same script as the pop, so servers
# sharing a Redis cannot overshoot; ACK/FAIL/RELEASE give the slot back.
_THROTTLE_LUA = """
local function throttle_check(p, q, wid, now)
  local c = redis.call('HGET', p .. 'throttle:conf', q)
  if not c then return true end
  local t = {}
  for n in string.gmatch(c, '%d+') do t[#t + 1] = tonumber(n) end
  local k, stamp = p .. 'throttle:' .. q, string.format('%.6f', now)
  if t[1] > 0 then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', stamp)
    if redis.call('ZCARD', k) >= t[1] then return false end
  end
  if t[3] > 0 then
    local wk = k .. ':w:' .. wid
    redis.call('ZREMRANGEBYSCORE', wk, '-inf', stamp)
    if redis.call('ZCARD', wk) >= t[3] then return false end
  end
  if t[4] > 0 then
    local rk = k .. ':r:' .. string.format('%d', math.floor(now / t[5]))
    if tonumber(redis.call('GET', rk) or '0') >= t[4] then return false end
  end
  return t
end

local function throttle_take(p, q, wid, now, jid, t)
  if t == true then return end
  local k, expiry = p .. 'throttle:' .. q, string.format('%.6f', now + t[2])
  if t[1] > 0 then redis.call('ZADD', k, expiry, jid) end
  if t[3] > 0 then redis.call('ZADD', k .. ':w:' .. wid, expiry, jid) end
  if t[4] > 0 then
    local rk = k .. ':r:' .. string.format('%d', math.floor(now / t[5]))
    redis.call('INCR', rk)
    redis.call('EXPIRE', rk, t[5] + 1)
  end
  if t[1] > 0 or t[3] > 0 then
    redis.call('HSET', p .. 'throttle:held', jid, q .. ' ' .. wid)
  end
end

local function throttle_release(p, jid)
  local held = redis.call('HGET', p .. 'throttle:held', jid)
  if not held then return end
  redis.call('HDEL', p .. 'throttle:held', jid)
  local sp = string.find(held, ' ', 1, true)
  local q = string.sub(held, 1, sp - 1)
  local k = p .. 'throttle:' .. q
  redis.call('ZREM', k, jid)
  redis.call('ZREM', k .. ':w:' .. string.sub(held, sp + 1), jid)
  -- a slot opened: wake a FETCH waiting on q (origin '*' reaches every server)
  if redis.call('EXISTS', p .. 'wait:' .. q) == 1 then
    redis.call('PUBLISH', p .. 'notify', '* ' .. q)
  end
end
"""

# Two live jobs may share a jid (a client retrying a PUSH, a careless
# producer), but reservations, ACK and FAIL go by jid: so only one copy of a
# jid is reserved at a time.  FETCH parks a copy whose jid is already reserved
# in ``held:<jid>`` (and skips to the next job); whatever ends that
# reservation (ACK, FAIL, the reaper, a release) hands the oldest held copy
# back to the front of its queue.  The ``held`` index lets the reaper's sweep
# find copies whose reservation ended some other way (HELD_SWEEP).
_HELD_LUA = """
local function hold(p, jid, pri, q, job, now)
  redis.call('LPUSH', p .. 'held:' .. jid, pri .. ' ' .. q .. ' ' .. job)
  redis.call('ZADD', p .. 'held', 'NX', now, jid)
end

local function requeue_front(p, q, pri, job)
  redis.call('SADD', p .. 'queues', q)
  redis.call('RPUSH', p .. 'q:' .. q .. ':' .. pri, job)
  redis.call('ZADD', p .. 'qp:' .. q, pri, pri)
  -- wake a FETCH waiting on it (origin '*' reaches every server)
  if redis.call('EXISTS', p .. 'wait:' .. q) == 1 then
    redis.call('PUBLISH', p .. 'notify', '* ' .. q)
  end
end

local function unhold(p, jid)
  local hk = p .. 'held:' .. jid
  local entry = redis.call('RPOP', hk)
  if not entry then return 0 end
  if redis.call('EXISTS', hk) == 0 then redis.call('ZREM', p .. 'held', jid) end
  local pri, q, job = string.match(entry, '^(%d) (%S+) (.*)$')
  if pri then requeue_front(p, q, pri, job) end
  return 1
end
"""

# A stored job's fields for a script.  Go allows values nested 10 000 deep,
# cjson only 1 000: such values can be only in args, custom or failure, which
# ``job.serialize`` writes after every scalar field, so a job cjson refuses
# is read from the part before ``,"args":`` (no string can hold that).
_JOB_LUA = """
local function job_fields(job)
  local ok, j = pcall(cjson.decode, job)
  if ok then return ok, j end
  local cut = string.find(job, ',"args":', 1, true)
  if not cut then return ok, j end
  return pcall(cjson.decode, string.sub(job, 1, cut - 1) .. '}')
end
"""

# ARGV: prefix, origin, queue, priority, job
PUSH = (
    _ENQUEUE_LUA
    + """
enqueue(ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[2])
return 1
"""
)

# ARGV: prefix, now, now_str, wid_json, wid, queue...
# Returns the job JSON; 0 if the worker is quiet or terminating (it gets no
# work); or false after marking every queue as waited on.  Paused and
# throttled queues are skipped.
FETCH = (
    _JOB_LUA
    + _THROTTLE_LUA
    + _HELD_LUA
    + """
local p, now = ARGV[1], tonumber(ARGV[2])
if ARGV[5] ~= '' then
  local st = redis.call('HGET', p .. 'worker:' .. ARGV[5], 'state')
  if st == 'quiet' or st == 'terminate' then return 0 end
end
local paused = p .. 'paused'
for i = 6, #ARGV do
  local q = ARGV[i]
  local limits = redis.call('SISMEMBER', paused, q) == 0 and throttle_check(p, q, ARGV[5], now)
  if limits then
    local qp = p .. 'qp:' .. q
    local top = redis.call('ZRANGE', qp, -1, -1)
    while top[1] do
      local lk = p .. 'q:' .. q .. ':' .. top[1]
      local job = redis.call('RPOP', lk)
      if redis.call('LLEN', lk) == 0 then redis.call('ZREM', qp, top[1]) end
      if job then
        -- A script is not rolled back on error and the job is already
        -- popped: anything undecodable goes to the dead set, never lost.
        local ok, j = job_fields(job)
        if ok and type(j) == 'table' and type(j.jid) == 'string' then
          local rf = tonumber(j.reserve_for) or 0
          if rf ~= rf or rf == 0 then rf = 1800 end
          if rf < 60 then rf = 60 end
          if rf > 86400 then rf = 86400 end
          local exp = now + rf
          if redis.call('HSETNX', p .. 'working', j.jid, '{"job":' .. job .. ',"reserved_at":"'
            .. ARGV[3] .. '","expiry":' .. string.format('%.6f', exp) .. ',"wid":' .. ARGV[4] .. '}') == 1 then
            redis.call('ZADD', p .. 'working:exp', exp, j.jid)
            throttle_take(p, q, ARGV[5], now, j.jid, limits)
            return job
          end
          hold(p, j.jid, top[1], q, job, now)
        else
          redis.call('ZADD', p .. 'dead', now + 15552000, job)
        end
      end
      top = redis.call('ZRANGE', qp, -1, -1)
    end
  end
end
-- pcall: out of memory, Redis refuses this first write of the script (an
-- empty FETCH must still answer null, so workers keep draining)
for i = 6, #ARGV do
  redis.pcall('SET', p .. 'wait:' .. ARGV[i], '1', 'PX', 3000)
end
return false
"""
)

HISTORY_DAYS = 180  # days of daily counters the web UI can show
HISTORY_TTL = (HISTORY_DAYS + 2) * 86400  # a day's counters outlive that, then go
# A day's counter gets its TTL when the day's first job settles (INCR gives 1).
_DAY_LUA = f"""
local function day_count(k)
  if redis.call('INCR', k) == 1 then redis.call('EXPIRE', k, {HISTORY_TTL}) end
end
"""

# ARGV: prefix, jid, day.  Returns the reservation JSON, or false if none.
ACK = (
    _THROTTLE_LUA
    + _HELD_LUA
    + _DAY_LUA
    + """
local p = ARGV[1]
local res = redis.call('HGET', p .. 'working', ARGV[2])
if not res then return false end
redis.call('HDEL', p .. 'working', ARGV[2])
redis.call('ZREM', p .. 'working:exp', ARGV[2])
throttle_release(p, ARGV[2])
unhold(p, ARGV[2])
redis.call('INCR', p .. 'stat:processed')
day_count(p .. 'stat:processed:' .. ARGV[3])
return res
"""
)

# ARGV: prefix, jid, day ('' = do not count), expected reservation,
# target set ('' = drop), score, job.
# Only the caller holding the current reservation wins: FAIL racing the
# reservation reaper (in this or another server) settles the job once.
FAIL = (
    _THROTTLE_LUA
    + _HELD_LUA
    + _DAY_LUA
    + """
local p = ARGV[1]
if redis.call('HGET', p .. 'working', ARGV[2]) ~= ARGV[4] then return 0 end
redis.call('HDEL', p .. 'working', ARGV[2])
redis.call('ZREM', p .. 'working:exp', ARGV[2])
throttle_release(p, ARGV[2])
unhold(p, ARGV[2])
if ARGV[3] ~= '' then
  redis.call('INCR', p .. 'stat:processed')
  redis.call('INCR', p .. 'stat:failures')
  day_count(p .. 'stat:processed:' .. ARGV[3])
  day_count(p .. 'stat:failures:' .. ARGV[3])
end
if ARGV[5] ~= '' then redis.call('ZADD', p .. ARGV[5], ARGV[6], ARGV[7]) end
return 1
"""
)

# ARGV: prefix, jid, expected reservation, queue, priority, job.
# Hands a reserved job back to the front of its queue, uncounted.
# With ARGV[7] (wid) and ARGV[8] (cutoff), only while that worker process is
# gone (no record, or no heartbeat since the cutoff): -1 when it is alive.
RELEASE = (
    _THROTTLE_LUA
    + _HELD_LUA
    + """
local p = ARGV[1]
if redis.call('HGET', p .. 'working', ARGV[2]) ~= ARGV[3] then return 0 end
if ARGV[8] then
  local beat = tonumber(redis.call('HGET', p .. 'worker:' .. ARGV[7], 'beat'))
  if beat and beat > tonumber(ARGV[8]) then return -1 end
end
redis.call('HDEL', p .. 'working', ARGV[2])
redis.call('ZREM', p .. 'working:exp', ARGV[2])
throttle_release(p, ARGV[2])
unhold(p, ARGV[2])
requeue_front(p, ARGV[4], ARGV[5], ARGV[6])
return 1
"""
)

# Put a job taken from a sorted set back into its queue with a fresh
# enqueued_at (PROMOTE, and the web UI's retry / add to queue); false when the
# member is not a job, so the caller can park it in the dead set instead.
_REQUEUE_LUA = (
    _JOB_LUA
    + _ENQUEUE_LUA
    + """
local function requeue(p, origin, job, now_str)
  local ok, j = job_fields(job)
  if not (ok and type(j) == 'table' and type(j.queue) == 'string'
          and string.match(j.queue, '^[%w._-]+$')) then return false end
  local stamp = '{"enqueued_at":"' .. now_str .. '"'
  local body
  local rest
  if string.sub(job, 1, 16) == '{"enqueued_at":"' then
    -- past the closing quote of the old stamp (skipping escaped characters)
    local i = 17
    while true do
      local c = string.find(job, '["\\\\]', i)
      if not c then break end
      if string.byte(job, c) == 34 then
        rest = string.sub(job, c + 1)
        break
      end
      i = c + 2
    end
  end
  if rest then
    body = stamp .. rest
  else
    body = stamp .. ',' .. string.sub(job, 2)
  end
  -- whatever is stored there (a string, NaN, 1e300), the job lands in 1-9
  local pri = tonumber(j.priority) or 5
  if pri ~= pri then pri = 5 end
  pri = math.max(1, math.min(9, math.floor(pri)))
  enqueue(p, j.queue, string.format('%d', pri), body, origin)
  return true
end
"""
)

# Move due members of a sorted set into their queues, refreshing enqueued_at.
# ARGV: prefix, origin, set name, now, now_str, limit.  Returns jobs moved.
PROMOTE = (
    _REQUEUE_LUA
    + """
local p = ARGV[1]
local key = p .. ARGV[3]
local jobs = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[6]))
for _, job in ipairs(jobs) do
  redis.call('ZREM', key, job)
  if not requeue(p, ARGV[2], job, ARGV[5]) then
    redis.call('ZADD', p .. 'dead', tonumber(ARGV[4]) + 15552000, job)
  end
end
return #jobs
"""
)

# ARGV: prefix, now, cutoff, limit.  Held copies (see _HELD_LUA) whose jid
# is no longer reserved go back to their queue; the reservation may have been
# removed without an unhold (a FLUSH racing a FETCH, an older server).  Each
# jid is looked at again after the cutoff at the earliest.  Returns count.
HELD_SWEEP = (
    _HELD_LUA
    + """
local p = ARGV[1]
local jids = redis.call('ZRANGEBYSCORE', p .. 'held', '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for _, jid in ipairs(jids) do
  if redis.call('HEXISTS', p .. 'working', jid) == 0 then n = n + unhold(p, jid) end
  if redis.call('EXISTS', p .. 'held:' .. jid) == 1 then
    redis.call('ZADD', p .. 'held', ARGV[2], jid)
  else
    redis.call('ZREM', p .. 'held', jid)
  end
end
return n
"""
)

# ARGV: prefix, set name, now, limit.  Drops expired members; returns count.
PURGE = """
local key = ARGV[1] .. ARGV[2]
local gone = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
return #gone
"""

# ARGV: prefix, queue...  Returns {name, size, name, size...}.
QUEUE_SIZES = """
local p, out = ARGV[1], {}
for i = 2, #ARGV do
  local q, n = ARGV[i], 0
  for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
    n = n + redis.call('LLEN', p .. 'q:' .. q .. ':' .. pri)
  end
  out[#out + 1] = q
  out[#out + 1] = n
end
return out
"""


# ARGV: prefix, wid, now, info_json.  A wid may hold several connections.
WORKER_CONNECT = """
local p, wid = ARGV[1], ARGV[2]
local k = p .. 'worker:' .. wid
redis.call('HSETNX', k, 'started_at', ARGV[3])
redis.call('HSETNX', k, 'state', 'running')
redis.call('HSET', k, 'info', ARGV[4], 'beat', ARGV[3])
redis.call('HINCRBY', k, 'conns', 1)
redis.call('ZADD', p .. 'workers', ARGV[3], wid)
return 1
"""

# ARGV: prefix, wid.  The record goes with the last connection.
WORKER_DISCONNECT = """
local p, wid = ARGV[1], ARGV[2]
local k = p .. 'worker:' .. wid
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('HINCRBY', k, 'conns', -1) <= 0 then
  redis.call('DEL', k)
  redis.call('ZREM', p .. 'workers', wid)
end
return 1
"""

# ARGV: prefix, wid, now ('' = not a heartbeat), rss_kb ('' = unchanged), wanted state.
# States only move forward: running -> quiet -> terminate.  Returns the state,
# or false for an unknown worker.
WORKER_BEAT = """
local p, wid = ARGV[1], ARGV[2]
local k = p .. 'worker:' .. wid
if redis.call('EXISTS', k) == 0 then return false end
-- pcall: out of memory, Redis refuses the first write of a script; a
-- heartbeat must not fail for that (FETCH, ACK and FAIL go on draining)
if ARGV[3] ~= '' then
  redis.pcall('HSET', k, 'beat', ARGV[3])
  redis.pcall('ZADD', p .. 'workers', ARGV[3], wid)
end
if ARGV[4] ~= '' then redis.pcall('HSET', k, 'rss_kb', ARGV[4]) end
local st = redis.call('HGET', k, 'state') or 'running'
local want = ARGV[5]
if (want == 'quiet' and st == 'running') or (want == 'terminate' and st ~= 'terminate') then
  st = want
  redis.pcall('HSET', k, 'state', st)
end
return st
"""

# ARGV: prefix, cutoff.  Removes workers silent since cutoff; returns their wids.
WORKER_REAP = """
local p = ARGV[1]
local gone = redis.call('ZRANGEBYSCORE', p .. 'workers', '-inf', ARGV[2], 'LIMIT', 0, 1000)
for _, wid in ipairs(gone) do
  redis.call('DEL', p .. 'worker:' .. wid)
  redis.call('ZREM', p .. 'workers', wid)
end
return gone
"""


# -- web UI: paging and per-entry actions (faktory.admin's web section) -------

# ARGV: prefix, queue, start, count.  Returns {total, pri, job, pri, job...}:
# the queue in reverse processing order (lowest priority first, newest first
# within one), reading only the list slices the page shows.
QUEUE_PAGE = """
local p, q = ARGV[1], ARGV[2]
local start, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local total, out = 0, {0}
for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
  local lk = p .. 'q:' .. q .. ':' .. pri
  local n = redis.call('LLEN', lk)
  local want = count - (#out - 1) / 2
  if want > 0 and start < total + n then
    local from = math.max(0, start - total)
    for _, job in ipairs(redis.call('LRANGE', lk, from, from + want - 1)) do
      out[#out + 1] = pri
      out[#out + 1] = job
    end
  end
  total = total + n
end
out[1] = total
return out
"""

# ARGV: prefix, queue, then (priority, job) pairs.  Removes one copy of each
# job; LREM stops at the first match, and pages show the head of each list.
QUEUE_DELETE = """
local p, q, n = ARGV[1], ARGV[2], 0
for i = 3, #ARGV, 2 do
  local lk = p .. 'q:' .. q .. ':' .. ARGV[i]
  n = n + redis.call('LREM', lk, 1, ARGV[i + 1])
  if redis.call('LLEN', lk) == 0 then redis.call('ZREM', p .. 'qp:' .. q, ARGV[i]) end
end
return n
"""

# ARGV: set key, first index, how many, reverse ('1'/'0'), jobtype needle,
# lower-case text.  Returns {next index or -1 at the end, score, job, ...} for
# the members of that index range that match: a filter scans in bounded steps.
SET_FILTER = """
local key, i, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cmd = 'ZRANGE'
if ARGV[4] == '1' then cmd = 'ZREVRANGE' end
local jt, text = ARGV[5], ARGV[6]
local chunk = redis.call(cmd, key, i, i + limit - 1, 'WITHSCORES')
local out = {i + #chunk / 2}
if #chunk < limit * 2 then out[1] = -1 end
for k = 1, #chunk, 2 do
  local m = chunk[k]
  if (jt == '' or string.find(m, jt, 1, true))
     and (text == '' or string.find(string.lower(m), text, 1, true)) then
    out[#out + 1] = chunk[k + 1]
    out[#out + 1] = m
  end
end
return out
"""

# ARGV: prefix, origin, set name, action (delete | retry | kill), now_str,
# dead score, then either '*' and a limit (the first entries of the set) or
# (score, jid needle, jid) triples naming entries.  retry = back into the
# queue with a fresh enqueued_at; kill = into the dead set.  Returns count.
SET_ACT = (
    _REQUEUE_LUA
    + """
local p, origin, key, action = ARGV[1], ARGV[2], ARGV[1] .. ARGV[3], ARGV[4]
local function act(job)
  redis.call('ZREM', key, job)
  if action == 'retry' then
    if not requeue(p, origin, job, ARGV[5]) then redis.call('ZADD', p .. 'dead', ARGV[6], job) end
  elseif action == 'kill' then
    redis.call('ZADD', p .. 'dead', ARGV[6], job)
  end
end
if ARGV[7] == '*' then
  local jobs = redis.call('ZRANGE', key, 0, tonumber(ARGV[8]) - 1)
  for _, job in ipairs(jobs) do act(job) end
  return #jobs
end
local n = 0
for i = 7, #ARGV, 3 do
  for _, job in ipairs(redis.call('ZRANGEBYSCORE', key, ARGV[i], ARGV[i])) do
    if string.find(job, ARGV[i + 1], 1, true) then
      local ok, j = job_fields(job)
      if ok and type(j) == 'table' and j.jid == ARGV[i + 2] then
        act(job)
        n = n + 1
        break
      end
    end
  end
end
return n
"""
)

# ARGV: prefix, queue...  Returns {name, {enqueued_at of the tail of each
# priority list}, ...}: the jobs waiting longest, for queue latency.
QUEUE_OLDEST = """
local p, out = ARGV[1], {}
for i = 2, #ARGV do
  local q, stamps = ARGV[i], {}
  for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
    local job = redis.call('LINDEX', p .. 'q:' .. q .. ':' .. pri, -1)
    if job then stamps[#stamps + 1] = string.match(job, '"enqueued_at":"([^"]*)"') or '' end
  end
  out[#out + 1] = q
  out[#out + 1] = stamps
end
return out
"""

# One bounded MUTATE step over a sorted set (see admin.Admin.mutate).
# ARGV: prefix, origin, set name, cursor, MATCH glob, op (discard|kill|requeue),
# now_str, dead score, jobtype needle ('' = any), then ('"jid":<json>' needle,
# jid) pairs.  Returns {next cursor, entries acted on}.
MUTATE_STEP = (
    _REQUEUE_LUA
    + """
local p, origin, key, op = ARGV[1], ARGV[2], ARGV[1] .. ARGV[3], ARGV[6]
local res = redis.call('ZSCAN', key, ARGV[4], 'MATCH', ARGV[5], 'COUNT', 100)
local items, n = res[2], 0
for i = 1, #items, 2 do
  local job = items[i]
  local hit
  if #ARGV > 9 then
    -- the jid field itself, never a job that merely mentions the jid
    hit = false
    local ok, j
    for k = 10, #ARGV, 2 do
      if string.find(job, ARGV[k], 2, true) then
        if ok == nil then ok, j = job_fields(job) end
        if ok and type(j) == 'table' and j.jid == ARGV[k + 1] then hit = true break end
      end
    end
  else
    hit = ARGV[9] == '' or string.find(job, ARGV[9], 1, true) ~= nil
  end
  if hit then
    if op == 'kill' then
      redis.call('ZADD', p .. 'dead', ARGV[8], job)
      if ARGV[3] ~= 'dead' then redis.call('ZREM', key, job) end
    else
      redis.call('ZREM', key, job)
      if op == 'requeue' and not requeue(p, origin, job, ARGV[7]) then
        redis.call('ZADD', p .. 'dead', ARGV[8], job)
      end
    end
    n = n + 1
  end
end
return {res[1], n}
"""
)

# ARGV: prefix, op (pause | resume | remove), queue...  Only known queues
# are touched.  remove deletes every job of the queue.  Returns how many.
QUEUE_CONTROL = """
local p, op, n = ARGV[1], ARGV[2], 0
for i = 3, #ARGV do
  local q = ARGV[i]
  if redis.call('SISMEMBER', p .. 'queues', q) == 1 then
    n = n + 1
    if op == 'pause' then
      redis.call('SADD', p .. 'paused', q)
    elseif op == 'resume' then
      redis.call('SREM', p .. 'paused', q)
    elseif op == 'remove' then
      for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
        redis.call('UNLINK', p .. 'q:' .. q .. ':' .. pri)
      end
      redis.call('UNLINK', p .. 'qp:' .. q)
      redis.call('SREM', p .. 'queues', q)
      redis.call('SREM', p .. 'paused', q)
    end
  end
end
return n
"""


class Script:
    """A Lua script run by EVALSHA, loaded on first use or after a NOSCRIPT."""

    def __init__(self, source: str) -> None:
        self.source = source.encode()
        self.sha = hashlib.sha1(self.source).hexdigest()

    def __call__(self, redis, args: Iterable[Any]) -> defer.Deferred:
        if type(args) is not tuple:
            args = tuple(args)
        d = redis.execute_command("EVALSHA", self.sha, 0, *args)
        return d.addErrback(self._noscript, redis, args)

    def _noscript(self, failure, redis, args: tuple) -> Any:
        failure.trap(txredisapi.ResponseError)
        if not str(failure.value).startswith("NOSCRIPT"):
            return failure
        return redis.execute_command("EVAL", self.source, 0, *args)


def _jid_of(raw: bytes) -> Any:
    try:
        job = json.loads(raw)
    except ValueError:
        return None
    return job.get("jid") if isinstance(job, dict) else None


def _s(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


class Store:
    """Talks Redis for the manager and the admin API."""

    SETS = ("scheduled", "retries", "dead")

    _push = Script(PUSH)
    _fetch = Script(FETCH)
    _ack = Script(ACK)
    _fail = Script(FAIL)
    _release = Script(RELEASE)
    _promote = Script(PROMOTE)
    _purge = Script(PURGE)
    _held_sweep = Script(HELD_SWEEP)
    _queue_sizes = Script(QUEUE_SIZES)
    _worker_connect = Script(WORKER_CONNECT)
    _worker_disconnect = Script(WORKER_DISCONNECT)
    _worker_beat = Script(WORKER_BEAT)
    _worker_reap = Script(WORKER_REAP)

    def __init__(self, redis, prefix: str = "fk:", origin: str = "-") -> None:
        self.redis = redis
        self.prefix = prefix
        # Tells our own notifications apart from other servers' (see manager).
        self.origin = origin
        self.notify_channel = prefix + "notify"

    def key(self, name: str) -> str:
        return self.prefix + name

    # -- jobs -----------------------------------------------------------------
    def push(self, queue: str, priority: int, payload: str) -> defer.Deferred:
        return self._push(self.redis, (self.prefix, self.origin, queue, priority, payload))

    def schedule(self, name: str, score: float, payload: str) -> defer.Deferred:
        return self.redis.execute_command("ZADD", self.prefix + name, repr(score), payload)

    def fetch(
        self, queues: list[str], now: float, now_str: str, wid: str, wid_json: str
    ) -> defer.Deferred:
        """Pop and reserve the next job: fires with its JSON bytes, None when
        the queues are empty, or 0 when the worker is quiet/terminating."""
        return self._fetch(self.redis, (self.prefix, repr(now), now_str, wid_json, wid, *queues))

    def ack(self, jid: str, day: str) -> defer.Deferred:
        """Fires with the reservation JSON bytes, or None if it was not reserved."""
        return self._ack(self.redis, (self.prefix, jid, day))

    def reservation(self, jid: str) -> defer.Deferred:
        return self.redis.execute_command("HGET", self.prefix + "working", jid)

    def settle_failure(
        self, jid: str, day: str, reservation: bytes, target: str, score: float, payload: str
    ) -> defer.Deferred:
        """Fires True when this call removed the reservation and stored the outcome."""
        d = self._fail(
            self.redis, (self.prefix, jid, day, reservation, target, repr(score), payload)
        )
        return d.addCallback(bool)

    def release(
        self, jid: str, reservation: bytes, queue: str, priority: int, payload: str
    ) -> defer.Deferred:
        d = self._release(self.redis, (self.prefix, jid, reservation, queue, priority, payload))
        return d.addCallback(bool)

    def release_orphan(
        self,
        jid: str,
        reservation: bytes,
        queue: str,
        priority: int,
        payload: str,
        wid: str,
        cutoff: float,
    ) -> defer.Deferred:
        """Release a reservation only while its worker process ``wid`` is gone
        (no heartbeat since ``cutoff``): fires with 1 (released), 0 (the
        reservation changed) or -1 (the worker is alive)."""
        args = (self.prefix, jid, reservation, queue, priority, payload, wid, repr(cutoff))
        return self._release(self.redis, args).addCallback(int)

    def drop_orphan_expiry(self, jid: str) -> defer.Deferred:
        """Remove an expiry entry whose reservation is already gone."""
        return self.redis.execute_command("ZREM", self.prefix + "working:exp", jid)

    def expired_reservations(self, now: float, limit: int = 100, skip: int = 0) -> defer.Deferred:
        d = self.redis.execute_command(
            "ZRANGEBYSCORE", self.prefix + "working:exp", "-inf", repr(now), "LIMIT", skip, limit
        )
        return d.addCallback(lambda jids: [_s(j) for j in jids])

    def extend_reservation(self, jid: str, until: float) -> defer.Deferred:
        """Push a reservation's expiry later (never earlier)."""
        return self.redis.execute_command(
            "ZADD", self.prefix + "working:exp", "XX", "GT", repr(until), jid
        )

    def promote(self, name: str, now: float, now_str: str, limit: int = 100) -> defer.Deferred:
        # Origin '*': the notification also wakes FETCHes waiting on this
        # server, which has no local push to learn of the promoted jobs from.
        return self._promote(self.redis, (self.prefix, "*", name, repr(now), now_str, limit))

    def release_held(self, now: float, cutoff: float, limit: int = 100) -> defer.Deferred:
        """Hand back held copies of jids no longer reserved; fires with the count."""
        return self._held_sweep(self.redis, (self.prefix, repr(now), repr(cutoff), limit))

    def purge(self, name: str, now: float, limit: int = 100) -> defer.Deferred:
        return self._purge(self.redis, (self.prefix, name, repr(now), limit))

    # -- workers ----------------------------------------------------------------
    def worker_connect(self, wid: str, now: float, info_json: str) -> defer.Deferred:
        return self._worker_connect(self.redis, (self.prefix, wid, repr(now), info_json))

    def worker_disconnect(self, wid: str) -> defer.Deferred:
        return self._worker_disconnect(self.redis, (self.prefix, wid))

    def worker_beat(
        self, wid: str, now: float | None, rss_kb: int | None = None, state: str = ""
    ) -> defer.Deferred:
        """Fires with the worker's state after the beat, or None if unknown."""
        args = (
            self.prefix,
            wid,
            "" if now is None else repr(now),
            "" if rss_kb is None else int(rss_kb),
            state,
        )
        return self._worker_beat(self.redis, args).addCallback(lambda r: _s(r) or None)

    def reap_workers(self, cutoff: float) -> defer.Deferred:
        d = self._worker_reap(self.redis, (self.prefix, repr(cutoff)))
        return d.addCallback(lambda wids: [_s(w) for w in wids])

    @defer.inlineCallbacks
    def workers(self):
        """Every live worker record: [{wid, info..., beat, rss_kb, state, conns}]."""
        wids = yield self.redis.execute_command("ZRANGE", self.prefix + "workers", 0, -1)
        records = yield gather(
            [self.redis.execute_command("HGETALL", self.prefix + "worker:" + _s(w)) for w in wids]
        )
        out = []
        for wid, flat in zip(wids, records):
            if not flat:
                continue
            rec = {_s(flat[i]): _s(flat[i + 1]) for i in range(0, len(flat), 2)}
            rec["wid"] = _s(wid)
            out.append(rec)
        return out

    # -- queues and sets -----------------------------------------------------
    @defer.inlineCallbacks
    def queue_names(self):
        names = yield self.redis.execute_command("SMEMBERS", self.prefix + "queues")
        return sorted(_s(n) for n in names)

    @defer.inlineCallbacks
    def queue_sizes(self, names: list[str] | None = None):
        """{queue: size} for the given queues (default: every known queue)."""
        if names is None:
            names = yield self.queue_names()
        if not names:
            return {}
        flat = yield self._queue_sizes(self.redis, (self.prefix, *names))
        return {_s(flat[i]): int(flat[i + 1]) for i in range(0, len(flat), 2)}

    @defer.inlineCallbacks
    def set_sizes(self):
        names = ("scheduled", "retries", "dead")
        sizes = yield gather(
            [self.redis.execute_command("ZCARD", self.prefix + n) for n in names]
            + [self.redis.execute_command("HLEN", self.prefix + "working")]
        )
        return dict(zip(names + ("working",), (int(s) for s in sizes)))

    @defer.inlineCallbacks
    def counters(self, day: str | None = None):
        keys = ["stat:processed", "stat:failures"]
        if day:
            keys += [f"stat:processed:{day}", f"stat:failures:{day}"]
        values = yield self.redis.execute_command("MGET", *(self.prefix + k for k in keys))
        return [_count(v) for v in values]

    @defer.inlineCallbacks
    def flush(self):
        """Delete every key under our prefix, and nothing else.

        Worker records survive, as the real server's in-memory heartbeats do:
        connected workers keep BEATing after a client test suite's FLUSH."""
        cursor = b"0"
        workers = (self.prefix + "workers").encode()
        worker = (self.prefix + "worker:").encode()
        while True:
            cursor, keys = yield self.redis.execute_command(
                "SCAN", cursor, "MATCH", glob_escape(self.prefix) + "*", "COUNT", 1000
            )
            keys = [k for k in keys if k != workers and not k.startswith(worker)]
            if keys:
                yield self.redis.execute_command("UNLINK", *keys)
            if cursor in (b"0", 0, "0"):
                return

    # -- web UI: paging and per-entry actions ------------------------------------
    _queue_page = Script(QUEUE_PAGE)
    _queue_delete = Script(QUEUE_DELETE)
    _set_filter = Script(SET_FILTER)
    _set_act = Script(SET_ACT)

    @defer.inlineCallbacks
    def queue_page(self, queue: str, start: int, count: int):
        """(total, [(priority, job bytes)]) for one page of a queue."""
        flat = yield self._queue_page(self.redis, (self.prefix, queue, start, count))
        return int(flat[0]), [(int(flat[i]), flat[i + 1]) for i in range(1, len(flat), 2)]

    def queue_delete(self, queue: str, items: list[tuple[int, bytes]]) -> defer.Deferred:
        """Remove these exact (priority, job) entries; fires with how many went."""
        if not items:
            return defer.succeed(0)
        args = [self.prefix, queue]
        for priority, raw in items:
            args += [priority, raw]
        return self._queue_delete(self.redis, args).addCallback(int)

    @defer.inlineCallbacks
    def set_page(self, name: str, start: int, count: int, reverse: bool = False):
        """(total, [(score, job bytes)]): one page of a sorted set by index."""
        cmd = "ZREVRANGE" if reverse else "ZRANGE"
        key = self.prefix + name
        total, flat = yield gather(
            [
                self.redis.execute_command("ZCARD", key),
                self.redis.execute_command(cmd, key, start, start + count - 1, "WITHSCORES"),
            ]
        )
        return int(total), [(_s(flat[i + 1]), flat[i]) for i in range(0, len(flat), 2)]

    @defer.inlineCallbacks
    def set_filter(self, name: str, start: int, scan: int, reverse: bool, jobtype: str, text: str):
        """Matches among ``scan`` members from index ``start``:
        (next index or None at the end, [(score, job bytes)])."""
        flat = yield self._set_filter(
            self.redis,
            (self.prefix + name, start, scan, "1" if reverse else "0", jobtype, text),
        )
        nxt = int(flat[0])
        return (None if nxt < 0 else nxt), [
            (_s(flat[i]), flat[i + 1]) for i in range(1, len(flat), 2)
        ]

    @defer.inlineCallbacks
    def set_entry(self, name: str, score: str, jid: str):
        """The member of a sorted set with this exact score and jid, or None."""
        members = yield self.redis.execute_command(
            "ZRANGEBYSCORE", self.prefix + name, score, score
        )
        needle = ('"jid":' + json.dumps(jid, ensure_ascii=False)).encode()
        for raw in members:
            if needle in raw and _jid_of(raw) == jid:  # not a job that mentions it
                return raw
        return None

    def set_act(
        self,
        name: str,
        action: str,
        keys: list[tuple[str, str]] | None,
        now_str: str,
        dead_score: float,
        limit: int = 100,
    ) -> defer.Deferred:
        """``delete``/``retry``/``kill`` the entries ``keys`` ([(score, jid)]),
        or with ``keys=None`` the first ``limit`` entries; fires with the count."""
        args = [self.prefix, self.origin, name, action, now_str, repr(dead_score)]
        if keys is None:
            args += ["*", limit]
        else:
            for score, jid in keys:
                args += [score, '"jid":' + json.dumps(jid, ensure_ascii=False), jid]
        return self._set_act(self.redis, args).addCallback(int)

    def set_clear(self, name: str) -> defer.Deferred:
        return self.redis.execute_command("UNLINK", self.prefix + name)

    @defer.inlineCallbacks
    def busy_page(self, start: int, count: int):
        """(total, [reservation bytes]) ordered by reservation expiry."""
        total, jids = yield gather(
            [
                self.redis.execute_command("HLEN", self.prefix + "working"),
                self.redis.execute_command(
                    "ZRANGE", self.prefix + "working:exp", start, start + count - 1
                ),
            ]
        )
        if not jids:
            return int(total), []
        rows = yield self.redis.execute_command("HMGET", self.prefix + "working", *jids)
        return int(total), [r for r in rows if r is not None]

    _queue_oldest = Script(QUEUE_OLDEST)
    _queue_control = Script(QUEUE_CONTROL)
    _mutate_step = Script(MUTATE_STEP)

    def mutate_step(
        self,
        name: str,
        cursor: bytes | str,
        match: str,
        op: str,
        now_str: str,
        dead_score: float,
        needle: str,
        jids: list[str],
    ) -> defer.Deferred:
        """One ZSCAN step of a MUTATE, acted on atomically: (next cursor, count).
        ``jids`` alternates ``'"jid":<json>'`` needles and the jids they find."""
        args = (
            self.prefix,
            self.origin,
            name,
            cursor,
            match,
            op,
            now_str,
            repr(dead_score),
            needle,
        )
        d = self._mutate_step(self.redis, args + tuple(jids))
        return d.addCallback(lambda r: (r[0], int(r[1])))

    @defer.inlineCallbacks
    def queue_oldest(self, names: list[str]):
        """{queue: [enqueued_at of the oldest job of each priority]}."""
        if not names:
            return {}
        flat = yield self._queue_oldest(self.redis, (self.prefix, *names))
        return {_s(flat[i]): [_s(x) for x in flat[i + 1]] for i in range(0, len(flat), 2)}

    def queue_control(self, op: str, names: list[str]) -> defer.Deferred:
        """``pause``, ``resume`` or ``remove`` these known queues; fires with the count."""
        if not names:
            return defer.succeed(0)
        return self._queue_control(self.redis, (self.prefix, op, *names)).addCallback(int)

    @defer.inlineCallbacks
    def paused_queues(self):
        names = yield self.redis.execute_command("SMEMBERS", self.prefix + "paused")
        return {_s(n) for n in names}

    def reservations(self) -> defer.Deferred:
        """Every reservation (bytes): only for pages that checked HLEN is small."""
        return self.redis.execute_command("HVALS", self.prefix + "working")

    @defer.inlineCallbacks
    def redis_info_sections(self, *names: str):
        """INFO text of these sections (one call each: Redis 6 takes one)."""
        parts = yield gather([self.redis.execute_command("INFO", name) for name in names])
        return b"\n".join(parts)

    def redis_info(self) -> defer.Deferred:
        """Redis INFO text (bytes)."""
        return self.redis.execute_command("INFO")


def _count(value: bytes | None) -> int:
    """A stored counter; one some other program garbled reads as 0 rather
    than failing INFO, the dashboard and the metrics."""
    try:
        return int(value or 0)
    except ValueError:
        return 0
