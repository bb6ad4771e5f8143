-- Records a read or write of a Durable Stream for its sliding TTL (src/engine/streams/port.ts),
-- and moves the keys' expiry with it.
-- KEYS[1] meta (hash: rev, record, touched), KEYS[2] chunks
-- ARGV[1] the time of the access (ms), ARGV[2] how long after the stream expires Redis may drop it (ms)
-- Returns 1 when the stream stands (touched, never moved back), 0 when it does not (nothing written).
if redis.call('HEXISTS', KEYS[1], 'rev') == 0 then return 0 end
local touched = tonumber(redis.call('HGET', KEYS[1], 'touched') or '0')
local at = tonumber(ARGV[1])
if at <= touched then return 1 end
redis.call('HSET', KEYS[1], 'touched', ARGV[1])
local record = cjson.decode(redis.call('HGET', KEYS[1], 'record'))
-- Only a sliding TTL moves; a stream that forks hold never expires in Redis (the rules hide it).
-- A fork leaves through the rules only, which give its source's count back.
if type(record.ttlSeconds) == 'number' and record.refCount == 0 and not record.softDeleted and record.forkedFrom == nil then
  for _, key in ipairs(KEYS) do redis.call('PEXPIREAT', key, at + record.ttlSeconds * 1000 + tonumber(ARGV[2])) end
end
return 1
