-- Two live jobs may share a jid (a client retrying a PUSH, a careless
-- producer), but reservations, ACK and FAIL go by jid: so only one copy of a
-- jid is reserved at a time.  FETCH parks a copy whose jid is already reserved
-- in ``held:<jid>`` (and skips to the next job); whatever ends that
-- reservation (ACK, FAIL, the reaper, a release) hands the oldest held copy
-- back to the front of its queue.  The ``held`` index lets the reaper's sweep
-- find copies whose reservation ended some other way (HELD_SWEEP).
local function hold(p, jid, pri, q, job, now)
  redis.call('LPUSH', p .. 'held:' .. jid, pri .. ' ' .. q .. ' ' .. job)
  redis.call('ZADD', p .. 'held', 'NX', now, jid)
end

local function requeue_front(p, q, pri, job)
  redis.call('SADD', p .. 'queues', q)
  redis.call('RPUSH', p .. 'q:' .. q .. ':' .. pri, job)
  redis.call('ZADD', p .. 'qp:' .. q, pri, pri)
  -- wake a FETCH waiting on it (origin '*' reaches every server)
  if redis.call('EXISTS', p .. 'wait:' .. q) == 1 then
    redis.call('PUBLISH', p .. 'notify', '* ' .. q)
  end
end

local function unhold(p, jid)
  local hk = p .. 'held:' .. jid
  local entry = redis.call('RPOP', hk)
  if not entry then return 0 end
  if redis.call('EXISTS', hk) == 0 then redis.call('ZREM', p .. 'held', jid) end
  local pri, q, job = string.match(entry, '^(%d) (%S+) (.*)$')
  if pri then requeue_front(p, q, pri, job) end
  return 1
end
