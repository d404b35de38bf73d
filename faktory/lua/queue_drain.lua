-- include: removed
-- One bounded step of removing a queue whose jobs some feature must hear of
-- (see admin.Admin.remove_queues): deletes up to `limit` of its jobs and,
-- once it is empty, forgets it as queue_control's remove does.
-- ARGV: prefix, queue, limit, removed probe.
-- Returns {jobs removed, 1 if the queue is gone else 0, the jobs the probe wants...}.
local p, q, left, probe = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local out = {0, 0}
if redis.call('SISMEMBER', p .. 'queues', q) == 0 then return out end
for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
  if left <= 0 then break end
  local lk = p .. 'q:' .. q .. ':' .. pri
  local jobs = redis.call('LRANGE', lk, 0, left - 1)
  redis.call('LTRIM', lk, #jobs, -1)
  left = left - #jobs
  out[1] = out[1] + #jobs
  for _, job in ipairs(jobs) do
    if removed_wanted(probe, job) then out[#out + 1] = job end
  end
  if redis.call('LLEN', lk) == 0 then redis.call('ZREM', p .. 'qp:' .. q, pri) end
end
if redis.call('ZCARD', p .. 'qp:' .. q) == 0 then
  redis.call('UNLINK', p .. 'qp:' .. q)
  redis.call('SREM', p .. 'queues', q)
  redis.call('SREM', p .. 'paused', q)
  out[2] = 1
end
return out
