local function group_of(job, by)
  local ok, j = pcall(cjson.decode, job)
  if not (ok and type(j) == 'table') then return nil end
  local v
  if by == 'jobtype' then
    v = j.jobtype
  elseif type(j.failure) == 'table' then
    v = j.failure.errtype
  end
  if type(v) ~= 'string' then v = '' end
  return v, j
end
