-- include: batch
-- ARGV[4..]: bid, 'complete' or 'success'.  A callback job was ACKed.
local bid, which = ARGV[4], ARGV[5]
if redis.call('HGET', bkey(bid), which .. '_st') ~= '1' then return fired end
finish(bid, which)
return fired
