-- include: batch
-- ARGV[4..]: bid, jid.  A member job was pushed.
local bid = ARGV[4]
local k = bkey(bid)
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
if redis.call('HSETNX', k .. ':jobs', ARGV[5], 'p') == 0 then refresh(bid) return {'dup'} end
redis.call('HINCRBY', k, 'total', 1)
redis.call('HINCRBY', k, 'pending', 1)
redis.call('HINCRBY', k, 'unrun', 1)
refresh(bid)
return fired
