local function enqueue(p, q, pri, job, origin)
  redis.call('SADD', p .. 'queues', q)
  redis.call('LPUSH', p .. 'q:' .. q .. ':' .. pri, job)
  redis.call('ZADD', p .. 'qp:' .. q, pri, pri)
  if redis.call('EXISTS', p .. 'wait:' .. q) == 1 then
    redis.call('PUBLISH', p .. 'notify', origin .. ' ' .. q)
  end
end
