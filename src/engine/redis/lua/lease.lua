-- Renews, releases or finishes leased jobs on the queue slot.
-- KEYS[1] ready, KEYS[2] leased, KEYS[3] order, KEYS[4] signal, KEYS[5] changes
-- ARGV[1] 'renew' | 'release' | 'finish', ARGV[2] lease ms (renew), ARGV[3..] generation ids
-- (renew takes any number: one call renews every lease a worker holds; release and finish one).
-- finish: ARGV[4] the terminal entry's type ('' when unknown), ARGV[5] retention ms of the feed;
-- the change feed notes that the log ended when the job was open (decision 036).
-- renew returns one 1 or 0 per id: 1 when renewed, 0 when the job was not leased.
-- release and finish return 1 when they acted, 0 when the job was not leased (release) or not open (finish).
if ARGV[1] == 'renew' then
  local t = redis.call('TIME')
  local untilMs = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
  local results = {}
  for i = 3, #ARGV do
    local id = ARGV[i]
    if redis.call('ZSCORE', KEYS[2], id) then
      redis.call('ZADD', KEYS[2], untilMs, id)
      results[#results + 1] = 1
    else
      results[#results + 1] = 0
    end
  end
  return results
end
local id = ARGV[3]
if ARGV[1] == 'release' then
  if redis.call('ZREM', KEYS[2], id) == 0 then return 0 end
  redis.call('ZADD', KEYS[1], tonumber(redis.call('HGET', KEYS[3], id) or 0), id)
  redis.call('LPUSH', KEYS[4], 1)
  redis.call('LTRIM', KEYS[4], 0, 63)
  return 1
end
local removed = redis.call('ZREM', KEYS[1], id) + redis.call('ZREM', KEYS[2], id)
redis.call('HDEL', KEYS[3], id)
if removed == 0 then return 0 end
if ARGV[4] and ARGV[4] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('XADD', KEYS[5], 'MINID', '~', string.format('%.0f', now - tonumber(ARGV[5])), '*', 'i', id, 't', ARGV[4])
end
return 1
