-- ARGV: prefix, wid.  The record goes with the last connection.
local p, wid = ARGV[1], ARGV[2]
local k = p .. 'worker:' .. wid
if redis.call('EXISTS', k) == 0 then return 0 end
if redis.call('HINCRBY', k, 'conns', -1) <= 0 then
  redis.call('DEL', k)
  redis.call('ZREM', p .. 'workers', wid)
end
return 1
