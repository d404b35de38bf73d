-- include: batch
-- ARGV[4..]: bid.
local bid = ARGV[4]
local k = bkey(bid)
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
redis.call('HSET', k, 'committed', '1')
redis.call('HSETNX', k, 'committed_at', NOW)
refresh(bid)
evaluate(bid)
return fired
