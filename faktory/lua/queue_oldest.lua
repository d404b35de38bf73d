-- ARGV: prefix, queue...  Returns {name, {enqueued_at of the tail of each
-- priority list}, ...}: the jobs waiting longest, for queue latency.
local p, out = ARGV[1], {}
for i = 2, #ARGV do
  local q, stamps = ARGV[i], {}
  for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
    local job = redis.call('LINDEX', p .. 'q:' .. q .. ':' .. pri, -1)
    if job then stamps[#stamps + 1] = string.match(job, '"enqueued_at":"([^"]*)"') or '' end
  end
  out[#out + 1] = q
  out[#out + 1] = stamps
end
return out
