-- ARGV: prefix, wid, now, info_json.  A wid may hold several connections.
local p, wid = ARGV[1], ARGV[2]
local k = p .. 'worker:' .. wid
redis.call('HSETNX', k, 'started_at', ARGV[3])
redis.call('HSETNX', k, 'state', 'running')
redis.call('HSET', k, 'info', ARGV[4], 'beat', ARGV[3])
redis.call('HINCRBY', k, 'conns', 1)
redis.call('ZADD', p .. 'workers', ARGV[3], wid)
return 1
