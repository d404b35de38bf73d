-- ARGV: prefix, queue, then (priority, job) pairs.  Removes one copy of each
-- job; LREM stops at the first match, and pages show the head of each list.
local p, q, n = ARGV[1], ARGV[2], 0
for i = 3, #ARGV, 2 do
  local lk = p .. 'q:' .. q .. ':' .. ARGV[i]
  n = n + redis.call('LREM', lk, 1, ARGV[i + 1])
  if redis.call('LLEN', lk) == 0 then redis.call('ZREM', p .. 'qp:' .. q, ARGV[i]) end
end
return n
