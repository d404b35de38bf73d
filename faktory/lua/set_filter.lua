-- ARGV: set key, first index, how many, reverse ('1'/'0'), jobtype needle,
-- lower-case text.  Returns {next index or -1 at the end, score, job, ...} for
-- the members of that index range that match: a filter scans in bounded steps.
local key, i, limit = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local cmd = 'ZRANGE'
if ARGV[4] == '1' then cmd = 'ZREVRANGE' end
local jt, text = ARGV[5], ARGV[6]
local chunk = redis.call(cmd, key, i, i + limit - 1, 'WITHSCORES')
local out = {i + #chunk / 2}
if #chunk < limit * 2 then out[1] = -1 end
for k = 1, #chunk, 2 do
  local m = chunk[k]
  if (jt == '' or string.find(m, jt, 1, true))
     and (text == '' or string.find(string.lower(m), text, 1, true)) then
    out[#out + 1] = chunk[k + 1]
    out[#out + 1] = m
  end
end
return out
