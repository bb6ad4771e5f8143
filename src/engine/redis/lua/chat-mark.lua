-- Notes on a generation which chat names it, so the chat's name can expire with the log.
-- KEYS[1] meta
-- ARGV[1] chat id
-- Returns 'running', 'ended' (a terminal entry stands), or 'missing' (no such generation: nothing written).
local terminal = redis.call('HGET', KEYS[1], 'terminal')
if not terminal then return 'missing' end
redis.call('HSET', KEYS[1], 'chat', ARGV[1])
if terminal == '1' then return 'ended' end
return 'running'
