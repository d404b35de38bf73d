-- include: removed
-- ARGV: prefix, queue, removed probe, then (priority, job) pairs.  Removes one
-- copy of each job; LREM stops at the first match, and pages show the head of
-- each list.  Returns {count, the deleted jobs the probe wants...}.
local p, q, probe, out = ARGV[1], ARGV[2], ARGV[3], {0}
for i = 4, #ARGV, 2 do
  local lk = p .. 'q:' .. q .. ':' .. ARGV[i]
  local n = redis.call('LREM', lk, 1, ARGV[i + 1])
  out[1] = out[1] + n
  if n > 0 and removed_wanted(probe, ARGV[i + 1]) then out[#out + 1] = ARGV[i + 1] end
  if redis.call('LLEN', lk) == 0 then redis.call('ZREM', p .. 'qp:' .. q, ARGV[i]) end
end
return out
