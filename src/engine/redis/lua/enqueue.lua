-- Puts a job on the queue unless it is queued or leased already, and wakes one claimer. A job
-- queued for the first time is a new generation: the change feed and the index of generations
-- note it (decision 036).
-- KEYS[1] ready, KEYS[2] leased, KEYS[3] order, KEYS[4] sequence, KEYS[5] signal,
-- KEYS[6] changes, KEYS[7] generations
-- ARGV[1] generation id, ARGV[2] retention ms (the feed and the index keep what is younger)
-- Returns 1 when queued now, 0 when it was already there.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local order = redis.call('HGET', KEYS[3], ARGV[1])
if not order then
  order = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[3], ARGV[1], order)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local oldest = now - tonumber(ARGV[2])
  redis.call('XADD', KEYS[6], 'MINID', '~', string.format('%.0f', oldest), '*', 'i', ARGV[1], 't', 'created')
  -- Unique and in creation order: a page of the index ends exactly where the next begins.
  redis.call('ZADD', KEYS[7], string.format('%.0f', now * 1000 + tonumber(order) % 1000), ARGV[1])
  -- A log lives its retention after its end; one created a day before that is gone too.
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', string.format('(%.0f', (oldest - 86400000) * 1000))
end
redis.call('ZADD', KEYS[1], order, ARGV[1])
redis.call('LPUSH', KEYS[5], 1)
redis.call('LTRIM', KEYS[5], 0, 63)
return 1
