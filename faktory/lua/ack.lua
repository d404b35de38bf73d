-- include: throttle held day
-- ARGV: prefix, jid, day.  Returns the reservation JSON, or false if none.
local p = ARGV[1]
local res = redis.call('HGET', p .. 'working', ARGV[2])
if not res then return false end
redis.call('HDEL', p .. 'working', ARGV[2])
redis.call('ZREM', p .. 'working:exp', ARGV[2])
throttle_release(p, ARGV[2])
unhold(p, ARGV[2])
redis.call('INCR', p .. 'stat:processed')
day_count(p .. 'stat:processed:' .. ARGV[3])
return res
