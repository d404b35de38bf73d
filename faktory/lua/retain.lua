-- ARGV: then (key, seconds left) pairs.  Only keys without a TTL are touched.
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('TTL', ARGV[i]) == -1 then
    if tonumber(ARGV[i + 1]) > 0 then redis.call('EXPIRE', ARGV[i], ARGV[i + 1])
    else redis.call('DEL', ARGV[i]) end
    n = n + 1
  end
end
return n
