-- A stored job's fields for a script.  Go allows values nested 10 000 deep,
-- cjson only 1 000: such values can be only in args, custom or failure, which
-- ``job.serialize`` writes after every scalar field, so a job cjson refuses
-- is read from the part before ``,"args":`` (no string can hold that).
local function job_fields(job)
  local ok, j = pcall(cjson.decode, job)
  if ok then return ok, j end
  local cut = string.find(job, ',"args":', 1, true)
  if not cut then return ok, j end
  return pcall(cjson.decode, string.sub(job, 1, cut - 1) .. '}')
end
