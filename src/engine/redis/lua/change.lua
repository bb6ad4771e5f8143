-- Notes a change of a log in the change feed (decision 036): a retry or a rewind, which its append
-- writes on the log's own slot and so cannot note in the same script.
-- KEYS[1] changes
-- ARGV[1] generation id, ARGV[2] entry type, ARGV[3] retention ms
-- Returns the record's position.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('XADD', KEYS[1], 'MINID', '~', string.format('%.0f', now - tonumber(ARGV[3])), '*', 'i', ARGV[1], 't', ARGV[2])
