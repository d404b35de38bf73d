-- A day's counter gets its TTL when the day's first job settles (INCR gives 1).
local function day_count(k)
  if redis.call('INCR', k) == 1 then redis.call('EXPIRE', k, HISTORY_TTL) end
end
