-- include: requeue group_field removed
-- One bounded step of a group action (see Groups.act).
-- ARGV: prefix, origin, set name, cursor, by, value, op (retry | delete),
-- now_str, dead score, removed probe.  Returns {next cursor, entries acted on,
-- the deleted jobs the probe wants...}.
local p, origin, key, op, probe = ARGV[1], ARGV[2], ARGV[1] .. ARGV[3], ARGV[7], ARGV[10]
local res = redis.call('ZSCAN', key, ARGV[4], 'COUNT', SCAN_STEP)
local items, out = res[2], {res[1], 0}
for i = 1, #items, 2 do
  local job = items[i]
  local v = group_of(job, ARGV[5])
  if v == nil then v = UNREADABLE end
  if v == ARGV[6] then
    redis.call('ZREM', key, job)
    if op == 'retry' and not requeue(p, origin, job, ARGV[8]) then
      redis.call('ZADD', p .. 'dead', ARGV[9], job)
    end
    out[2] = out[2] + 1
    if op == 'delete' and removed_wanted(probe, job) then out[#out + 1] = job end
  end
end
return out
