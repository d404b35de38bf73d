-- ARGV: conf key, queue, spec, queue, spec...  Replaces the whole table.
redis.call('DEL', ARGV[1])
for i = 2, #ARGV, 2 do redis.call('HSET', ARGV[1], ARGV[i], ARGV[i + 1]) end
return (#ARGV - 1) / 2
