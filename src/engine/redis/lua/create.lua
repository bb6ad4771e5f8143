-- Creates a generation's log with its `created` entry, unless it exists.
-- KEYS[1] meta, KEYS[2] log
-- ARGV[1] canonical body of the created entry, ARGV[2] at (ISO time)
-- Returns 1 when created, 0 when the generation already existed.
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('XADD', KEYS[2], '1-0', 'b', ARGV[1], 'at', ARGV[2])
redis.call('HSET', KEYS[1], 'last', 1, 'terminal', 0, 'fence', 0)
return 1
