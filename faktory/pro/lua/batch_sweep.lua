-- ARGV: prefix, start, count.  Drops index entries whose batch expired;
-- returns {checked, removed}.
local P = ARGV[1]
local bids = redis.call('ZRANGE', P .. 'batches', tonumber(ARGV[2]),
  tonumber(ARGV[2]) + tonumber(ARGV[3]) - 1)
local gone = {}
for _, bid in ipairs(bids) do
  if redis.call('EXISTS', P .. 'batch:' .. bid) == 0 then gone[#gone + 1] = bid end
end
if #gone > 0 then redis.call('ZREM', P .. 'batches', unpack(gone)) end
return {#bids, #gone}
