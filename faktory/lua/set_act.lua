-- include: requeue removed
-- ARGV: prefix, origin, set name, action (delete | retry | kill), now_str,
-- dead score, removed probe, then either '*' and a limit (the first entries of
-- the set) or (score, jid needle, jid) triples naming entries.  retry = back
-- into the queue with a fresh enqueued_at; kill = into the dead set.  Returns
-- {count, the deleted/killed jobs the probe wants...}.
local p, origin, key, action, probe = ARGV[1], ARGV[2], ARGV[1] .. ARGV[3], ARGV[4], ARGV[7]
local out = {0}
local function act(job)
  redis.call('ZREM', key, job)
  if action == 'retry' then
    if not requeue(p, origin, job, ARGV[5]) then redis.call('ZADD', p .. 'dead', ARGV[6], job) end
  elseif action == 'kill' then
    redis.call('ZADD', p .. 'dead', ARGV[6], job)
  end
  out[1] = out[1] + 1
  if action ~= 'retry' and removed_wanted(probe, job) then out[#out + 1] = job end
end
if ARGV[8] == '*' then
  for _, job in ipairs(redis.call('ZRANGE', key, 0, tonumber(ARGV[9]) - 1)) do act(job) end
  return out
end
for i = 8, #ARGV, 3 do
  for _, job in ipairs(redis.call('ZRANGEBYSCORE', key, ARGV[i], ARGV[i])) do
    if string.find(job, ARGV[i + 1], 1, true) then
      local ok, j = job_fields(job)
      if ok and type(j) == 'table' and j.jid == ARGV[i + 2] then
        act(job)
        break
      end
    end
  end
end
return out
