-- include: enqueue
-- Shared by every batch script.  ARGV: prefix, now_str, origin, ...; script-specific
-- arguments start at ARGV[4].  Hash ``batch:<bid>`` holds the batch, counters
-- and callback templates; ``batch:<bid>:jobs`` maps member jid -> p (pushed,
-- not yet run) / f (failed, ran) / s (succeeded); ``batch:<bid>:kids`` holds
-- child bids; ZSET ``batches`` indexes bids by creation time for the web UI.
local P, NOW, ORIGIN = ARGV[1], ARGV[2], ARGV[3]
local fired = {'ok'}
local function bkey(bid) return P .. 'batch:' .. bid end
local function refresh(bid)
  local k = bkey(bid)
  local b = redis.call('HMGET', k, 'committed_at', 'success_done')
  local ttl = UNCOMMITTED_TTL
  if b[2] == '1' then ttl = FINISHED_TTL elseif b[1] then ttl = ACTIVE_TTL end
  redis.call('EXPIRE', k, ttl)
  redis.call('EXPIRE', k .. ':jobs', ttl)
  redis.call('EXPIRE', k .. ':kids', ttl)
end
local function fire(k, which)
  local b = redis.call('HMGET', k, which, which .. '_q', which .. '_pri')
  enqueue(P, b[2], b[3], '{"enqueued_at":"' .. NOW .. '",' .. string.sub(b[1], 2), ORIGIN)
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
