-- include: batch
-- ARGV[4..]: bid, parent_bid, created_at, score, description, then for complete
-- and success: template JSON ('' = none), queue, priority.
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
