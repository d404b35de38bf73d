-- ARGV: prefix, jid, state, now_str, ttl.
local k = ARGV[1] .. 'track:' .. ARGV[2]
redis.call('HSET', k, 'state', ARGV[3], 'updated_at', ARGV[4])
redis.call('EXPIRE', k, tonumber(ARGV[5]))
return 1
