-- include: held
-- ARGV: prefix, now, cutoff, limit.  Held copies (see _HELD_LUA) whose jid
-- is no longer reserved go back to their queue; the reservation may have been
-- removed without an unhold (a FLUSH racing a FETCH, an older server).  Each
-- jid is looked at again after the cutoff at the earliest.  Returns count.
local p = ARGV[1]
local jids = redis.call('ZRANGEBYSCORE', p .. 'held', '-inf', ARGV[3], 'LIMIT', 0, tonumber(ARGV[4]))
local n = 0
for _, jid in ipairs(jids) do
  if redis.call('HEXISTS', p .. 'working', jid) == 0 then n = n + unhold(p, jid) end
  if redis.call('EXISTS', p .. 'held:' .. jid) == 1 then
    redis.call('ZADD', p .. 'held', ARGV[2], jid)
  else
    redis.call('ZREM', p .. 'held', jid)
  end
end
return n
