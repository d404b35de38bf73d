-- include: removed
-- One bounded step of clearing a sorted set whose jobs some feature must hear
-- of (see admin.Admin.clear_set): removes its first `limit` entries.
-- ARGV: prefix, set name, limit, removed probe.
-- Returns {entries removed, the removed jobs the probe wants...}.
local key, probe = ARGV[1] .. ARGV[2], ARGV[4]
local jobs = redis.call('ZRANGE', key, 0, tonumber(ARGV[3]) - 1)
local out = {#jobs}
if #jobs > 0 then redis.call('ZREM', key, unpack(jobs)) end
for _, job in ipairs(jobs) do
  if removed_wanted(probe, job) then out[#out + 1] = job end
end
return out
