-- ARGV: prefix, set name, now, limit.  Drops expired members; returns count.
local key = ARGV[1] .. ARGV[2]
local gone = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
if #gone > 0 then redis.call('ZREM', key, unpack(gone)) end
return #gone
