-- Records a read or write of a Durable Stream for its sliding TTL (src/engine/streams/port.ts).
-- KEYS[1] meta (hash: rev, record, touched)
-- ARGV[1] the time of the access (ms)
-- Returns 1 when the stream stands (touched, never moved back), 0 when it does not (nothing written).
if redis.call('HEXISTS', KEYS[1], 'rev') == 0 then return 0 end
local touched = tonumber(redis.call('HGET', KEYS[1], 'touched') or '0')
if tonumber(ARGV[1]) > touched then redis.call('HSET', KEYS[1], 'touched', ARGV[1]) end
return 1
