-- include: throttle held day
-- ARGV: prefix, jid, day ('' = do not count), expected reservation,
-- target set ('' = drop), score, job.
-- Only the caller holding the current reservation wins: FAIL racing the
-- reservation reaper (in this or another server) settles the job once.
local p = ARGV[1]
if redis.call('HGET', p .. 'working', ARGV[2]) ~= ARGV[4] then return 0 end
redis.call('HDEL', p .. 'working', ARGV[2])
redis.call('ZREM', p .. 'working:exp', ARGV[2])
throttle_release(p, ARGV[2])
unhold(p, ARGV[2])
if ARGV[3] ~= '' then
  redis.call('INCR', p .. 'stat:processed')
  redis.call('INCR', p .. 'stat:failures')
  day_count(p .. 'stat:processed:' .. ARGV[3])
  day_count(p .. 'stat:failures:' .. ARGV[3])
end
if ARGV[5] ~= '' then redis.call('ZADD', p .. ARGV[5], ARGV[6], ARGV[7]) end
return 1
