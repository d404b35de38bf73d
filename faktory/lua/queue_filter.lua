-- ARGV: prefix, queue, position, how many, jid needle, jobtype needle,
-- lower-case text.  Positions count the queue in page order (lowest priority
-- first, newest first within one, as QUEUE_PAGE lists it).  Returns {next
-- position or -1 at the end, priority, job, ...}: the matches among ``how
-- many`` entries from ``position``.
local p, q = ARGV[1], ARGV[2]
local pos, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local jid, jt, text = ARGV[5], ARGV[6], ARGV[7]
local base, examined, out = 0, 0, {-1}
for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
  local lk = p .. 'q:' .. q .. ':' .. pri
  local n = redis.call('LLEN', lk)
  if pos >= base and pos < base + n and examined < limit then
    local from = pos - base
    local chunk = redis.call('LRANGE', lk, from, from + limit - examined - 1)
    for _, job in ipairs(chunk) do
      if (jid == '' or string.find(job, jid, 1, true))
         and (jt == '' or string.find(job, jt, 1, true))
         and (text == '' or string.find(string.lower(job), text, 1, true)) then
        out[#out + 1] = pri
        out[#out + 1] = job
      end
    end
    examined = examined + #chunk
    pos = pos + #chunk
  end
  base = base + n
end
if pos < base then out[1] = pos end
return out
