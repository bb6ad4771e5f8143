-- Ends a log with `cancelled` unless it has ended; written by the engine whoever holds the lease.
-- KEYS[1] meta, KEYS[2] log
-- ARGV[1] at, ARGV[2] notification channel, ARGV[3] retention seconds
-- Returns 'cancelled', 'alreadyFinished' or 'notFound'.
local meta = redis.call('HMGET', KEYS[1], 'last', 'terminal', 'fence')
if not meta[1] then return 'notFound' end
if meta[2] == '1' then return 'alreadyFinished' end
local offset = tonumber(meta[1]) + 1
local body = '{"attempt":' .. meta[3] .. ',"type":"cancelled"}'
redis.call('XADD', KEYS[2], offset .. '-0', 'b', body, 'at', ARGV[1])
redis.call('HSET', KEYS[1], 'last', offset, 'terminal', 1)
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('SPUBLISH', ARGV[2], offset)
return 'cancelled'
