-- Puts a job on the queue unless it is queued or leased already, and wakes one claimer.
-- KEYS[1] ready, KEYS[2] leased, KEYS[3] order, KEYS[4] sequence, KEYS[5] signal
-- ARGV[1] generation id
-- Returns 1 when queued now, 0 when it was already there.
if redis.call('ZSCORE', KEYS[1], ARGV[1]) or redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
local order = redis.call('HGET', KEYS[3], ARGV[1])
if not order then
  order = redis.call('INCR', KEYS[4])
  redis.call('HSET', KEYS[3], ARGV[1], order)
end
redis.call('ZADD', KEYS[1], order, ARGV[1])
redis.call('LPUSH', KEYS[5], 1)
redis.call('LTRIM', KEYS[5], 0, 63)
return 1
