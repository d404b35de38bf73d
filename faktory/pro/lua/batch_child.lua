-- include: batch
-- ARGV[4..]: parent, child.  Adopts an existing batch as a child.
local parent, child = ARGV[4], ARGV[5]
if redis.call('EXISTS', bkey(parent)) == 0 then return {'noparent'} end
if redis.call('EXISTS', bkey(child)) == 0 then return {'nobatch'} end
local current = redis.call('HGET', bkey(child), 'parent_bid')
if current == parent then return fired end
if current and current ~= '' then return {'hasparent', current} end
-- Walk the parent's whole ancestry (never deeper than MAX_DEPTH: a batch
-- cannot nest deeper, so an unfinished walk is refused, never trusted).
local up, n = parent, 0
while up and up ~= '' do
  if up == child then return {'cycle'} end
  n = n + 1
  if n >= MAX_DEPTH then return {'toodeep'} end
  up = redis.call('HGET', bkey(up), 'parent_bid')
end
adopt(parent, child)
return fired
