-- Which removed jobs go back to Python for the "removed" hook (faktory.removal):
-- probe '' = none, '*' = every job, else '"key"' needles separated by newlines.
local function removed_wanted(probe, job)
  if probe == '' then return false end
  if probe == '*' then return true end
  for needle in string.gmatch(probe, '[^\n]+') do
    if string.find(job, needle, 1, true) then return true end
  end
  return false
end
