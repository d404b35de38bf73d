-- include: requeue
-- ARGV: prefix, origin, set name, action (delete | retry | kill), now_str,
-- dead score, then either '*' and a limit (the first entries of the set) or
-- (score, jid needle, jid) triples naming entries.  retry = back into the
-- queue with a fresh enqueued_at; kill = into the dead set.  Returns count.
local p, origin, key, action = ARGV[1], ARGV[2], ARGV[1] .. ARGV[3], ARGV[4]
local function act(job)
  redis.call('ZREM', key, job)
  if action == 'retry' then
    if not requeue(p, origin, job, ARGV[5]) then redis.call('ZADD', p .. 'dead', ARGV[6], job) end
  elseif action == 'kill' then
    redis.call('ZADD', p .. 'dead', ARGV[6], job)
  end
end
if ARGV[7] == '*' then
  local jobs = redis.call('ZRANGE', key, 0, tonumber(ARGV[8]) - 1)
  for _, job in ipairs(jobs) do act(job) end
  return #jobs
end
local n = 0
for i = 7, #ARGV, 3 do
  for _, job in ipairs(redis.call('ZRANGEBYSCORE', key, ARGV[i], ARGV[i])) do
    if string.find(job, ARGV[i + 1], 1, true) then
      local ok, j = job_fields(job)
      if ok and type(j) == 'table' and j.jid == ARGV[i + 2] then
        act(job)
        n = n + 1
        break
      end
    end
  end
end
return n
