"""Batches in Redis: the key layout, the limits and the Lua scripts every
batch change runs (each one atomic), shared by ``batch`` and ``batch_undo``."""

from __future__ import annotations

import re
from typing import Any

from ..store import _ENQUEUE_LUA

UNCOMMITTED_TTL = 30 * 60  # a batch never committed vanishes after 30 min idle
ACTIVE_TTL = 30 * 24 * 3600  # committed, still waiting on jobs (retries last ~3 weeks)
FINISHED_TTL = 24 * 3600  # kept readable (STATUS, OPEN, web UI) after success
MAX_DEPTH = 64  # batches nest at most this deep (the cycle check walks it all)
# A batch id: what BATCH NEW hands out ("b-" + 16 URL-safe characters) and,
# for ids from elsewhere, letters, digits, "_", "-" and "." only: never ":",
# so no id can name another structure's key (``batch:<bid>:jobs``...).
BID = re.compile(r"\A[A-Za-z0-9_.\-]{1,64}\Z")
STATUS_FIELDS = (
    "bid",
    "parent_bid",
    "description",
    "created_at",
    "complete_st",
    "success_st",
    "total",
    "pending",
    "failed",
)

# Shared by every script.  ARGV: prefix, now_str, origin, ...; script-specific
# arguments start at ARGV[4].  Hash ``batch:<bid>`` holds the batch, counters
# and callback templates; ``batch:<bid>:jobs`` maps member jid -> p (pushed,
# not yet run) / f (failed, ran) / s (succeeded); ``batch:<bid>:kids`` holds
# child bids; ZSET ``batches`` indexes bids by creation time for the web UI.
_LIB = (
    _ENQUEUE_LUA
    + f"""
local P, NOW, ORIGIN = ARGV[1], ARGV[2], ARGV[3]
local MAX_DEPTH = {MAX_DEPTH}
local fired = {{'ok'}}
local function bkey(bid) return P .. 'batch:' .. bid end
local function refresh(bid)
  local k = bkey(bid)
  local b = redis.call('HMGET', k, 'committed_at', 'success_done')
  local ttl = {UNCOMMITTED_TTL}
  if b[2] == '1' then ttl = {FINISHED_TTL} elseif b[1] then ttl = {ACTIVE_TTL} end
  redis.call('EXPIRE', k, ttl)
  redis.call('EXPIRE', k .. ':jobs', ttl)
  redis.call('EXPIRE', k .. ':kids', ttl)
end
local function fire(k, which)
  local b = redis.call('HMGET', k, which, which .. '_q', which .. '_pri')
  enqueue(P, b[2], b[3], '{{"enqueued_at":"' .. NOW .. '",' .. string.sub(b[1], 2), ORIGIN)
  redis.call('HSET', k, which .. '_st', '1')
  fired[#fired + 1] = b[2]
end
local evaluate
local function finish(bid, which)
  local k = bkey(bid)
  if redis.call('HGET', k, which .. '_done') == '1' then return end
  redis.call('HSET', k, which .. '_done', '1')
  if redis.call('HEXISTS', k, which) == 1 then redis.call('HSET', k, which .. '_st', '2') end
  refresh(bid)
  evaluate(bid)
  local parent = redis.call('HGET', k, 'parent_bid')
  if parent and parent ~= '' and redis.call('EXISTS', bkey(parent)) == 1 then
    local field = 'kids_unsuccessful'
    if which == 'complete' then field = 'kids_incomplete' end
    redis.call('HINCRBY', bkey(parent), field, -1)
    refresh(parent)
    evaluate(parent)
  end
end
evaluate = function(bid)
  local k = bkey(bid)
  local b = redis.call('HMGET', k, 'committed', 'unrun', 'pending', 'kids_incomplete',
    'kids_unsuccessful', 'complete_done', 'success_done', 'complete_st', 'success_st')
  if b[1] ~= '1' then return end
  if b[6] ~= '1' then
    if not b[8] and tonumber(b[2] or 0) <= 0 and tonumber(b[4] or 0) <= 0 then
      if redis.call('HEXISTS', k, 'complete') == 1 then fire(k, 'complete')
      else finish(bid, 'complete') end
    end
    return
  end
  if b[7] ~= '1' and not b[9] and tonumber(b[3] or 0) <= 0 and tonumber(b[5] or 0) <= 0 then
    if redis.call('HEXISTS', k, 'success') == 1 then fire(k, 'success')
    else finish(bid, 'success') end
  end
end
-- Levels from ``bid`` up to its root (1 = no parent), or MAX_DEPTH + 1 when
-- the chain is longer than any batch may nest.
local function depth(bid)
  local up, n = bid, 0
  while up and up ~= '' and n <= MAX_DEPTH do
    n = n + 1
    up = redis.call('HGET', bkey(up), 'parent_bid')
  end
  return n
end
local function adopt(parent, child)
  local ck = bkey(child)
  redis.call('SADD', bkey(parent) .. ':kids', child)
  local b = redis.call('HMGET', ck, 'complete_done', 'success_done')
  if b[1] ~= '1' then redis.call('HINCRBY', bkey(parent), 'kids_incomplete', 1) end
  if b[2] ~= '1' then redis.call('HINCRBY', bkey(parent), 'kids_unsuccessful', 1) end
  redis.call('HSET', ck, 'parent_bid', parent)
  refresh(parent)
end
"""
)

# ARGV[4..]: bid, parent_bid, created_at, score, description, then for complete
# and success: template JSON ('' = none), queue, priority.
NEW = (
    _LIB
    + """
local bid, parent = ARGV[4], ARGV[5]
local k = bkey(bid)
if parent ~= '' and redis.call('EXISTS', bkey(parent)) == 0 then return {'noparent'} end
if parent ~= '' and depth(parent) >= MAX_DEPTH then return {'toodeep'} end
redis.call('HSET', k, 'bid', bid, 'created_at', ARGV[6], 'description', ARGV[8],
  'committed', '0', 'total', 0, 'pending', 0, 'failed', 0, 'unrun', 0,
  'kids_incomplete', 0, 'kids_unsuccessful', 0)
if ARGV[9] ~= '' then
  redis.call('HSET', k, 'complete', ARGV[9], 'complete_q', ARGV[10], 'complete_pri', ARGV[11])
end
if ARGV[12] ~= '' then
  redis.call('HSET', k, 'success', ARGV[12], 'success_q', ARGV[13], 'success_pri', ARGV[14])
end
redis.call('ZADD', P .. 'batches', ARGV[7], bid)
refresh(bid)
if parent ~= '' then adopt(parent, bid) end
return fired
"""
)

# ARGV[4..]: bid.  Takes a batch back until the next COMMIT.
OPEN = (
    _LIB
    + """
local k = bkey(ARGV[4])
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
redis.call('HSET', k, 'committed', '0')
refresh(ARGV[4])
return fired
"""
)

# ARGV[4..]: bid.
COMMIT = (
    _LIB
    + """
local bid = ARGV[4]
local k = bkey(bid)
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
redis.call('HSET', k, 'committed', '1')
redis.call('HSETNX', k, 'committed_at', NOW)
refresh(bid)
evaluate(bid)
return fired
"""
)

# ARGV[4..]: bid, jid.  A member job was pushed.
ADD_JOB = (
    _LIB
    + """
local bid = ARGV[4]
local k = bkey(bid)
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
if redis.call('HSETNX', k .. ':jobs', ARGV[5], 'p') == 0 then refresh(bid) return {'dup'} end
redis.call('HINCRBY', k, 'total', 1)
redis.call('HINCRBY', k, 'pending', 1)
redis.call('HINCRBY', k, 'unrun', 1)
refresh(bid)
return fired
"""
)

# ARGV[4..]: bid, jid, '1' (ACKed) or '0' (failed).  A member job ran.
JOB_DONE = (
    _LIB
    + """
local bid, jid = ARGV[4], ARGV[5]
local k = bkey(bid)
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
local st = redis.call('HGET', k .. ':jobs', jid)
if not st then return {'unknown'} end
if ARGV[6] == '1' then
  if st == 's' then return fired end
  redis.call('HSET', k .. ':jobs', jid, 's')
  redis.call('HINCRBY', k, 'pending', -1)
  if st == 'p' then redis.call('HINCRBY', k, 'unrun', -1)
  else redis.call('HINCRBY', k, 'failed', -1) end
else
  if st ~= 'p' then return fired end
  redis.call('HSET', k .. ':jobs', jid, 'f')
  redis.call('HINCRBY', k, 'unrun', -1)
  redis.call('HINCRBY', k, 'failed', 1)
end
refresh(bid)
evaluate(bid)
return fired
"""
)

# ARGV[4..]: bid, 'complete' or 'success'.  A callback job was ACKed.
CALLBACK_DONE = (
    _LIB
    + """
local bid, which = ARGV[4], ARGV[5]
if redis.call('HGET', bkey(bid), which .. '_st') ~= '1' then return fired end
finish(bid, which)
return fired
"""
)

# ARGV[4..]: parent, child.  Adopts an existing batch as a child.
CHILD = (
    _LIB
    + """
local parent, child = ARGV[4], ARGV[5]
if redis.call('EXISTS', bkey(parent)) == 0 then return {'noparent'} end
if redis.call('EXISTS', bkey(child)) == 0 then return {'nobatch'} end
local current = redis.call('HGET', bkey(child), 'parent_bid')
if current == parent then return fired end
if current and current ~= '' then return {'hasparent', current} end
-- Walk the parent's whole ancestry (never deeper than MAX_DEPTH: a batch
-- cannot nest deeper, so an unfinished walk is refused, never trusted).
local up, n = parent, 0
while up and up ~= '' do
  if up == child then return {'cycle'} end
  n = n + 1
  if n >= MAX_DEPTH then return {'toodeep'} end
  up = redis.call('HGET', bkey(up), 'parent_bid')
end
adopt(parent, child)
return fired
"""
)

# ARGV: prefix, start, count.  Drops index entries whose batch expired;
# returns {checked, removed}.
SWEEP = """
local P = ARGV[1]
local bids = redis.call('ZRANGE', P .. 'batches', tonumber(ARGV[2]),
  tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1)
local gone = {}
for _, bid in ipairs(bids) do
  if redis.call('EXISTS', P .. 'batch:' .. bid) == 0 then gone[#gone + 1] = bid end
end
if #gone > 0 then redis.call('ZREM', P .. 'batches', unpack(gone)) end
return {#bids, #gone}
"""


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else ("" if value is None else str(value))
