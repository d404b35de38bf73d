-- ARGV: prefix, limit, kinds (space-separated), then (key suffix, ttl) of
-- the two time slots now falls in (``faktory.pro.jobtypes``: 5 minutes and
-- 1 hour, each expiring once its window has passed), then per job type:
-- jobtype, executions, n, then n (kind, increment) pairs.  A slot counts
-- under the same series as the totals (a job type folded into ``other``
-- there is counted as ``other`` here), so slots stay as bounded as the hash.
local P, LIMIT = ARGV[1], tonumber(ARGV[2])
local h, z = P .. 'metrics:jobs', P .. 'metrics:jobtypes'
local slots = {h .. ARGV[4], h .. ARGV[6]}
local kinds = {}
for k in string.gmatch(ARGV[3], '%S+') do kinds[#kinds + 1] = k end
local function fold(jt)
  for _, key in ipairs({h, slots[1], slots[2]}) do
    for _, k in ipairs(kinds) do
      local v = redis.call('HGET', key, k .. '|' .. jt)
      if v then
        redis.call('HINCRBY', key, k .. '|' .. OTHER, v)
        redis.call('HDEL', key, k .. '|' .. jt)
      end
    end
  end
end
local i = 8
while i <= #ARGV do
  local jt, runs, n = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
  local target = jt
  if jt ~= OTHER then
    if redis.call('ZSCORE', z, jt) then
      redis.call('ZINCRBY', z, runs, jt)
    elseif redis.call('ZCARD', z) < LIMIT then
      redis.call('ZADD', z, runs, jt)
    else
      local least = redis.call('ZRANGE', z, 0, 0, 'WITHSCORES')
      fold(least[1])
      redis.call('ZREM', z, least[1])
      redis.call('ZADD', z, tonumber(least[2]) + runs, jt)
    end
  end
  while redis.call('ZCARD', z) > LIMIT do  -- the limit was lowered
    local least = redis.call('ZRANGE', z, 0, 0)
    fold(least[1])
    redis.call('ZREM', z, least[1])
  end
  for j = i + 3, i + 2 + 2 * n, 2 do
    redis.call('HINCRBY', h, ARGV[j] .. '|' .. target, ARGV[j + 1])
    for _, slot in ipairs(slots) do
      redis.call('HINCRBY', slot, ARGV[j] .. '|' .. target, ARGV[j + 1])
    end
  end
  i = i + 3 + 2 * n
end
for k, slot in ipairs(slots) do redis.call('EXPIRE', slot, tonumber(ARGV[3 + 2 * k])) end
return 1
