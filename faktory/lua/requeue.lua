-- include: job enqueue
-- Put a job taken from a sorted set back into its queue with a fresh
-- enqueued_at (PROMOTE, and the web UI's retry / add to queue); false when the
-- member is not a job, so the caller can park it in the dead set instead.
local function requeue(p, origin, job, now_str)
  local ok, j = job_fields(job)
  if not (ok and type(j) == 'table' and type(j.queue) == 'string'
          and string.match(j.queue, '^[%w._-]+$')) then return false end
  local stamp = '{"enqueued_at":"' .. now_str .. '"'
  local body
  local rest
  if string.sub(job, 1, 16) == '{"enqueued_at":"' then
    -- past the closing quote of the old stamp (skipping escaped characters)
    local i = 17
    while true do
      local c = string.find(job, '["\\]', i)
      if not c then break end
      if string.byte(job, c) == 34 then
        rest = string.sub(job, c + 1)
        break
      end
      i = c + 2
    end
  end
  if rest then
    body = stamp .. rest
  else
    body = stamp .. ',' .. string.sub(job, 2)
  end
  -- whatever is stored there (a string, NaN, 1e300), the job lands in 1-9
  local pri = tonumber(j.priority) or DEFAULT_PRIORITY
  if pri ~= pri then pri = DEFAULT_PRIORITY end
  pri = math.max(MIN_PRIORITY, math.min(MAX_PRIORITY, math.floor(pri)))
  enqueue(p, j.queue, string.format('%d', pri), body, origin)
  return true
end
