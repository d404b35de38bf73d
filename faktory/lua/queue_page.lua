-- ARGV: prefix, queue, start, count.  Returns {total, pri, job, pri, job...}:
-- the queue in reverse processing order (lowest priority first, newest first
-- within one), reading only the list slices the page shows.
local p, q = ARGV[1], ARGV[2]
local start, count = tonumber(ARGV[3]), tonumber(ARGV[4])
local total, out = 0, {0}
for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
  local lk = p .. 'q:' .. q .. ':' .. pri
  local n = redis.call('LLEN', lk)
  local want = count - (#out - 1) / 2
  if want > 0 and start < total + n then
    local from = math.max(0, start - total)
    for _, job in ipairs(redis.call('LRANGE', lk, from, from + want - 1)) do
      out[#out + 1] = pri
      out[#out + 1] = job
    end
  end
  total = total + n
end
out[1] = total
return out
