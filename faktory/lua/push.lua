-- include: enqueue
-- ARGV: prefix, origin, queue, priority, job
enqueue(ARGV[1], ARGV[3], ARGV[4], ARGV[5], ARGV[2])
return 1
