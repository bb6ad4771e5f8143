-- Takes a slot of a key's concurrent answers, unless the key holds as many as it may.
-- KEYS[1] the key's slots: a sorted set, member = slot (a reservation or a generation id), score = expiry (ms)
-- ARGV[1] slot, ARGV[2] expiry (ms), ARGV[3] now (ms), ARGV[4] limit, ARGV[5] a slot it replaces ('' for none)
-- Returns 1 when taken (or already held: its expiry is updated), 0 when the key is at its limit.
-- Taken or extended, the set lives until its latest slot's expiry (a renewed open stream's slot too).
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if ARGV[5] ~= '' and ARGV[5] ~= ARGV[1] then redis.call('ZREM', KEYS[1], ARGV[5]) end
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
return 1
