-- Queue throttles' hooks in FETCH, ACK, FAIL and RELEASE: without the
-- throttle feature (faktory.pro.throttle, which puts its own
-- pro/lua/throttle.lua in their place with Store.use_fragment) a queue has no
-- limit and there is no slot to give back.
local function throttle_check(p, q, wid, now) return true end
local function throttle_take(p, q, wid, now, jid, t) end
local function throttle_release(p, jid) end
