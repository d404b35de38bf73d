-- ARGV: prefix, cutoff.  Removes workers silent since cutoff; returns their wids.
local p = ARGV[1]
local gone = redis.call('ZRANGEBYSCORE', p .. 'workers', '-inf', ARGV[2], 'LIMIT', 0, REAP_STEP)
for _, wid in ipairs(gone) do
  redis.call('DEL', p .. 'worker:' .. wid)
  redis.call('ZREM', p .. 'workers', wid)
end
return gone
