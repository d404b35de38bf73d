-- ARGV: prefix, queue...  Returns {name, size, name, size...}.
local p, out = ARGV[1], {}
for i = 2, #ARGV do
  local q, n = ARGV[i], 0
  for _, pri in ipairs(redis.call('ZRANGE', p .. 'qp:' .. q, 0, -1)) do
    n = n + redis.call('LLEN', p .. 'q:' .. q .. ':' .. pri)
  end
  out[#out + 1] = q
  out[#out + 1] = n
end
return out
