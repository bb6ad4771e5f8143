-- Leases the oldest claimable job: queued, or leased with an expired lease. Server time decides.
-- A claim is an attempt starting (or a takeover): the change feed notes it (decision 036).
-- KEYS[1] ready, KEYS[2] leased, KEYS[3] order, KEYS[4] changes
-- ARGV[1] lease ms, ARGV[2] retention ms of the feed
-- Returns {id, takeover(0|1), jobs still claimable} or {false, ms until the earliest lease expires
-- (-1 when none)}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 1)[1]
local queued = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
local pick, takeover = nil, 0
if expired and queued then
  local a = tonumber(redis.call('HGET', KEYS[3], expired) or 0)
  local b = tonumber(redis.call('HGET', KEYS[3], queued) or 0)
  if a <= b then pick, takeover = expired, 1 else pick = queued end
elseif expired then
  pick, takeover = expired, 1
else
  pick = queued
end
if not pick then
  local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  if first[2] then return {false, tonumber(first[2]) - now} end
  return {false, -1}
end
redis.call('ZREM', KEYS[1], pick)
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[1]), pick)
redis.call('XADD', KEYS[4], 'MINID', '~', string.format('%.0f', now - tonumber(ARGV[2])), '*', 'i', pick, 't', 'started')
return {pick, takeover, redis.call('ZCARD', KEYS[1]) + redis.call('ZCOUNT', KEYS[2], '-inf', now)}
