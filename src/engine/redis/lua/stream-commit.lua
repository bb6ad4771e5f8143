-- A Durable Streams commit (src/engine/streams/port.ts): compare-and-set on the stream's revision,
-- then the new record and the new chunks together, the keys' expiry, and the live notification.
-- KEYS[1] meta (hash: rev, record, touched), KEYS[2] chunks (list; chunk at position p is index p-1)
-- ARGV[1] expected revision ('' when no stream may stand), ARGV[2] new revision ('' deletes the
-- stream and its chunks), ARGV[3] record JSON, ARGV[4] creation time (ms; the touch of a new
-- stream), ARGV[5] '1' to drop every chunk first, ARGV[6] notification channel,
-- ARGV[7] when Redis may drop both keys (ms since the epoch; '' never: no expiry, or forks stand),
-- ARGV[8] position of the first new chunk, ARGV[9..] the new chunks' bytes, in order.
-- Returns 1 when committed, 0 when the revision was not the expected one (nothing written).
local current = redis.call('HGET', KEYS[1], 'rev') or ''
if current ~= ARGV[1] then return 0 end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('SPUBLISH', ARGV[6], '0')
  return 1
end
if ARGV[5] == '1' then redis.call('DEL', KEYS[2]) end
local count = #ARGV - 8
if count > 0 and redis.call('LLEN', KEYS[2]) + 1 ~= tonumber(ARGV[8]) then
  return redis.error_reply('chunk positions out of order')
end
for i = 1, count do redis.call('RPUSH', KEYS[2], ARGV[8 + i]) end
redis.call('HSET', KEYS[1], 'rev', ARGV[2], 'record', ARGV[3])
if current == '' or ARGV[5] == '1' then redis.call('HSET', KEYS[1], 'touched', ARGV[4]) end
for _, key in ipairs(KEYS) do
  if ARGV[7] == '' then redis.call('PERSIST', key) else redis.call('PEXPIREAT', key, ARGV[7]) end
end
redis.call('SPUBLISH', ARGV[6], '0')
return 1
