-- include: throttle held
-- ARGV: prefix, jid, expected reservation, queue, priority, job.
-- Hands a reserved job back to the front of its queue, uncounted.
-- With ARGV[7] (wid) and ARGV[8] (cutoff), only while that worker process is
-- gone (no record, or no heartbeat since the cutoff): -1 when it is alive.
local p = ARGV[1]
if redis.call('HGET', p .. 'working', ARGV[2]) ~= ARGV[3] then return 0 end
if ARGV[8] then
  local beat = tonumber(redis.call('HGET', p .. 'worker:' .. ARGV[7], 'beat'))
  if beat and beat > tonumber(ARGV[8]) then return -1 end
end
redis.call('HDEL', p .. 'working', ARGV[2])
redis.call('ZREM', p .. 'working:exp', ARGV[2])
throttle_release(p, ARGV[2])
unhold(p, ARGV[2])
requeue_front(p, ARGV[4], ARGV[5], ARGV[6])
return 1
