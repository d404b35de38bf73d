-- include: batch
-- ARGV[4..]: bid.  Takes a batch back until the next COMMIT.
local k = bkey(ARGV[4])
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
redis.call('HSET', k, 'committed', '0')
refresh(ARGV[4])
return fired
