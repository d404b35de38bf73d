-- include: requeue removed
-- One bounded MUTATE step over a sorted set (see admin.Admin.mutate).
-- ARGV: prefix, origin, set name, cursor, MATCH glob, op (discard|kill|requeue),
-- now_str, dead score, jobtype needle ('' = any), removed probe, then
-- ('"jid":<json>' needle, jid) pairs.  Returns {next cursor, entries acted on,
-- the discarded/killed jobs the probe wants...}.
local p, origin, key, op, probe = ARGV[1], ARGV[2], ARGV[1] .. ARGV[3], ARGV[6], ARGV[10]
local res = redis.call('ZSCAN', key, ARGV[4], 'MATCH', ARGV[5], 'COUNT', SCAN_STEP)
local items, out = res[2], {res[1], 0}
for i = 1, #items, 2 do
  local job = items[i]
  local hit
  if #ARGV > 10 then
    -- the jid field itself, never a job that merely mentions the jid
    hit = false
    local ok, j
    for k = 11, #ARGV, 2 do
      if string.find(job, ARGV[k], 2, true) then
        if ok == nil then ok, j = job_fields(job) end
        if ok and type(j) == 'table' and j.jid == ARGV[k + 1] then hit = true break end
      end
    end
  else
    hit = ARGV[9] == '' or string.find(job, ARGV[9], 1, true) ~= nil
  end
  if hit then
    if op == 'kill' then
      redis.call('ZADD', p .. 'dead', ARGV[8], job)
      if ARGV[3] ~= 'dead' then redis.call('ZREM', key, job) end
    else
      redis.call('ZREM', key, job)
      if op == 'requeue' and not requeue(p, origin, job, ARGV[7]) then
        redis.call('ZADD', p .. 'dead', ARGV[8], job)
      end
    end
    out[2] = out[2] + 1
    if op ~= 'requeue' and removed_wanted(probe, job) then out[#out + 1] = job end
  end
end
return out
