-- include: group_field
-- ARGV: set key, first index, how many, by (errtype | jobtype).
-- Returns {next index or -1 at the end, value, count, sample message, ...}.
local key, i, limit, by = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]
local chunk = redis.call('ZRANGE', key, i, i + limit - 1)
local counts, samples, order = {}, {}, {}
for _, job in ipairs(chunk) do
  local v, j = group_of(job, by)
  if v == nil then v = UNREADABLE end
  if counts[v] == nil then
    counts[v] = 0
    order[#order + 1] = v
    local m = ''
    if j and type(j.failure) == 'table' and type(j.failure.message) == 'string' then
      m = string.sub(j.failure.message, 1, SAMPLE_CHARS)
    end
    samples[v] = m
  end
  counts[v] = counts[v] + 1
end
local out = {i + #chunk}
if #chunk < limit then out[1] = -1 end
for _, v in ipairs(order) do
  out[#out + 1] = v
  out[#out + 1] = counts[v]
  out[#out + 1] = samples[v]
end
return out
