-- include: batch
-- ARGV[4..]: bid, jid, '1' (ACKed) or '0' (failed).  A member job ran.
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
