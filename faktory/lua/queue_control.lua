-- ARGV: prefix, op (pause | resume | remove), queue...  Only known queues
-- are touched.  remove deletes every job of the queue.  Returns how many.
local p, op, n = ARGV[1], ARGV[2], 0
for i = 3, #ARGV do
  local q = ARGV[i]
  if redis.call('SISMEMBER', p .. 'queues', q) == 1 then
    n = n + 1
    if op == 'pause' then
      redis.call('SADD', p .. 'paused', q)
    elseif op == 'resume' then
      redis.call('SREM', p .. 'paused', q)
    elseif op == 'remove' then
      for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
        redis.call('UNLINK', p .. 'q:' .. q .. ':' .. pri)
      end
      redis.call('UNLINK', p .. 'qp:' .. q)
      redis.call('SREM', p .. 'queues', q)
      redis.call('SREM', p .. 'paused', q)
    end
  end
end
return n
