-- include: batch
-- ARGV[4..]: bid, jid.  Only a member still pushed-not-run ('p') is removed.
local bid, jid = ARGV[4], ARGV[5]
local k = bkey(bid)
if redis.call('EXISTS', k) == 0 then return {'nobatch'} end
if redis.call('HGET', k .. ':jobs', jid) ~= 'p' then return fired end
redis.call('HDEL', k .. ':jobs', jid)
redis.call('HINCRBY', k, 'total', -1)
redis.call('HINCRBY', k, 'pending', -1)
redis.call('HINCRBY', k, 'unrun', -1)
refresh(bid)
evaluate(bid)
return fired
