-- KEYS: none.  ARGV: key, jid.  Deletes the lock only if ``jid`` owns it.
if redis.call('GET', ARGV[1]) == ARGV[2] then return redis.call('DEL', ARGV[1]) end
return 0
