-- include: requeue
-- Move due members of a sorted set into their queues, refreshing enqueued_at.
-- ARGV: prefix, origin, set name, now, now_str, limit.  Returns jobs moved.
local p = ARGV[1]
local key = p .. ARGV[3]
local jobs = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[4], 'LIMIT', 0, tonumber(ARGV[6]))
for _, job in ipairs(jobs) do
  redis.call('ZREM', key, job)
  if not requeue(p, ARGV[2], job, ARGV[5]) then
    redis.call('ZADD', p .. 'dead', tonumber(ARGV[4]) + DEAD_TTL, job)
  end
end
return #jobs
