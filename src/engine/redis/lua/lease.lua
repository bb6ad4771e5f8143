-- Renews, releases or finishes a leased job on the queue slot.
-- KEYS[1] ready, KEYS[2] leased, KEYS[3] order, KEYS[4] signal
-- ARGV[1] 'renew' | 'release' | 'finish', ARGV[2] generation id, ARGV[3] lease ms (renew)
-- Returns 1 when it acted, 0 when the job was not leased (renew/release) or not open (finish).
local id = ARGV[2]
if ARGV[1] == 'renew' then
  if not redis.call('ZSCORE', KEYS[2], id) then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), id)
  return 1
elseif ARGV[1] == 'release' then
  if redis.call('ZREM', KEYS[2], id) == 0 then return 0 end
  redis.call('ZADD', KEYS[1], tonumber(redis.call('HGET', KEYS[3], id) or 0), id)
  redis.call('LPUSH', KEYS[4], 1)
  redis.call('LTRIM', KEYS[4], 0, 63)
  return 1
end
local removed = redis.call('ZREM', KEYS[1], id) + redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
if removed > 0 then return 1 end
return 0
