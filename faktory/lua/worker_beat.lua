-- ARGV: prefix, wid, now ('' = not a heartbeat), rss_kb ('' = unchanged), wanted state.
-- States only move forward: running -> quiet -> terminate.  Returns the state,
-- or false for an unknown worker.
local p, wid = ARGV[1], ARGV[2]
local k = p .. 'worker:' .. wid
if redis.call('EXISTS', k) == 0 then return false end
-- pcall: out of memory, Redis refuses the first write of a script; a
-- heartbeat must not fail for that (FETCH, ACK and FAIL go on draining)
if ARGV[3] ~= '' then
  redis.pcall('HSET', k, 'beat', ARGV[3])
  redis.pcall('ZADD', p .. 'workers', ARGV[3], wid)
end
if ARGV[4] ~= '' then redis.pcall('HSET', k, 'rss_kb', ARGV[4]) end
local st = redis.call('HGET', k, 'state') or 'running'
local want = ARGV[5]
if (want == 'quiet' and st == 'running') or (want == 'terminate' and st ~= 'terminate') then
  st = want
  redis.pcall('HSET', k, 'state', st)
end
return st
