-- ARGV: prefix, now, queue...  Per queue: slots in use, busiest worker's
-- slots, jobs fetched in the current rate window.
local p, now, out = ARGV[1], tonumber(ARGV[2]), {}
local per_worker = {}
local held = redis.call('HVALS', p .. 'throttle:held')
for _, h in ipairs(held) do per_worker[h] = (per_worker[h] or 0) + 1 end
for i = 3, #ARGV do
  local q = ARGV[i]
  local k = p .. 'throttle:' .. q
  local c = redis.call('HGET', p .. 'throttle:conf', q)
  local t = {}
  if c then for n in string.gmatch(c, '%d+') do t[#t + 1] = tonumber(n) end end
  local busiest = 0
  for h, n in pairs(per_worker) do
    if string.sub(h, 1, #q + 1) == q .. ' ' and n > busiest then busiest = n end
  end
  local rate = 0
  if t[5] and t[5] > 0 then
    rate = tonumber(redis.call('GET', k .. ':r:' .. string.format('%d', math.floor(now / t[5]))) or '0')
  end
  out[#out + 1] = redis.call('ZCOUNT', k, '(' .. string.format('%.6f', now), '+inf')
  out[#out + 1] = busiest
  out[#out + 1] = rate
end
return out
