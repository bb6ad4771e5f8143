-- Gives a chat's name of a generation the retention of that generation's ended log, unless the
-- chat names another generation by now (whose log may still grow).
-- KEYS[1] chat
-- ARGV[1] generation id, ARGV[2] retention seconds
-- Returns 1 when the expiry was set, 0 when the chat names another generation or none.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
