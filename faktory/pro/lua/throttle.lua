-- Queue throttles (faktory.pro.throttle configures them).  FETCH checks a
-- queue's limits and takes a slot in the same script as the pop, so servers
-- sharing a Redis cannot overshoot; ACK/FAIL/RELEASE give the slot back.
local function throttle_check(p, q, wid, now)
  local c = redis.call('HGET', p .. 'throttle:conf', q)
  if not c then return true end
  local t = {}
  for n in string.gmatch(c, '%d+') do t[#t + 1] = tonumber(n) end
  local k, stamp = p .. 'throttle:' .. q, string.format('%.6f', now)
  if t[1] > 0 then
    redis.call('ZREMRANGEBYSCORE', k, '-inf', stamp)
    if redis.call('ZCARD', k) >= t[1] then return false end
  end
  if t[3] > 0 then
    local wk = k .. ':w:' .. wid
    redis.call('ZREMRANGEBYSCORE', wk, '-inf', stamp)
    if redis.call('ZCARD', wk) >= t[3] then return false end
  end
  if t[4] > 0 then
    local rk = k .. ':r:' .. string.format('%d', math.floor(now / t[5]))
    if tonumber(redis.call('GET', rk) or '0') >= t[4] then return false end
  end
  return t
end

local function throttle_take(p, q, wid, now, jid, t)
  if t == true then return end
  local k, expiry = p .. 'throttle:' .. q, string.format('%.6f', now + t[2])
  if t[1] > 0 then redis.call('ZADD', k, expiry, jid) end
  if t[3] > 0 then redis.call('ZADD', k .. ':w:' .. wid, expiry, jid) end
  if t[4] > 0 then
    local rk = k .. ':r:' .. string.format('%d', math.floor(now / t[5]))
    redis.call('INCR', rk)
    redis.call('EXPIRE', rk, t[5] + 1)
  end
  if t[1] > 0 or t[3] > 0 then
    redis.call('HSET', p .. 'throttle:held', jid, q .. ' ' .. wid)
  end
end

local function throttle_release(p, jid)
  local held = redis.call('HGET', p .. 'throttle:held', jid)
  if not held then return end
  redis.call('HDEL', p .. 'throttle:held', jid)
  local sp = string.find(held, ' ', 1, true)
  local q = string.sub(held, 1, sp - 1)
  local k = p .. 'throttle:' .. q
  redis.call('ZREM', k, jid)
  redis.call('ZREM', k .. ':w:' .. string.sub(held, sp + 1), jid)
  -- a slot opened: wake a FETCH waiting on q (origin '*' reaches every server)
  if redis.call('EXISTS', p .. 'wait:' .. q) == 1 then
    redis.call('PUBLISH', p .. 'notify', '* ' .. q)
  end
end
