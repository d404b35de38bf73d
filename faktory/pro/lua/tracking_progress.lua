-- ARGV: prefix, jid, now_str, percent ('' = unchanged), has_desc ('1'/'0'),
-- desc, ttl for a record that did not exist.  Progress never changes state.
local k = ARGV[1] .. 'track:' .. ARGV[2]
local fresh = redis.call('EXISTS', k) == 0
redis.call('HSET', k, 'updated_at', ARGV[3])
if ARGV[4] ~= '' then redis.call('HSET', k, 'percent', ARGV[4]) end
if ARGV[5] == '1' then redis.call('HSET', k, 'desc', ARGV[6]) end
if fresh then redis.call('EXPIRE', k, tonumber(ARGV[7])) end
return 1
