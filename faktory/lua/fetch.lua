-- include: job throttle held
-- ARGV: prefix, now, now_str, wid_json, wid, queue...
-- Returns the job JSON; 0 if the worker is quiet or terminating (it gets no
-- work); or false after marking every queue as waited on.  Paused and
-- throttled queues are skipped.
local p, now = ARGV[1], tonumber(ARGV[2])
if ARGV[5] ~= '' then
  local st = redis.call('HGET', p .. 'worker:' .. ARGV[5], 'state')
  if st == 'quiet' or st == 'terminate' then return 0 end
end
local paused = p .. 'paused'
for i = 6, #ARGV do
  local q = ARGV[i]
  local limits = redis.call('SISMEMBER', paused, q) == 0 and throttle_check(p, q, ARGV[5], now)
  if limits then
    local qp = p .. 'qp:' .. q
    local top = redis.call('ZRANGE', qp, -1, -1)
    while top[1] do
      local lk = p .. 'q:' .. q .. ':' .. top[1]
      local job = redis.call('RPOP', lk)
      if redis.call('LLEN', lk) == 0 then redis.call('ZREM', qp, top[1]) end
      if job then
        -- A script is not rolled back on error and the job is already
        -- popped: anything undecodable goes to the dead set, never lost.
        local ok, j = job_fields(job)
        if ok and type(j) == 'table' and type(j.jid) == 'string' then
          local rf = tonumber(j.reserve_for) or 0
          if rf ~= rf or rf == 0 then rf = DEFAULT_RESERVE_FOR end
          if rf < MIN_RESERVE_FOR then rf = MIN_RESERVE_FOR end
          if rf > MAX_RESERVE_FOR then rf = MAX_RESERVE_FOR end
          local exp = now + rf
          if redis.call('HSETNX', p .. 'working', j.jid, '{"job":' .. job .. ',"reserved_at":"'
            .. ARGV[3] .. '","expiry":' .. string.format('%.6f', exp) .. ',"wid":' .. ARGV[4] .. '}') == 1 then
            redis.call('ZADD', p .. 'working:exp', exp, j.jid)
            throttle_take(p, q, ARGV[5], now, j.jid, limits)
            return job
          end
          hold(p, j.jid, top[1], q, job, now)
        else
          redis.call('ZADD', p .. 'dead', now + DEAD_TTL, job)
        end
      end
      top = redis.call('ZRANGE', qp, -1, -1)
    end
  end
end
-- pcall: out of memory, Redis refuses this first write of the script (an
-- empty FETCH must still answer null, so workers keep draining)
for i = 6, #ARGV do
  redis.pcall('SET', p .. 'wait:' .. ARGV[i], '1', 'PX', WAIT_FLAG_MS)
end
return false
