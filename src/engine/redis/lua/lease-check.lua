-- Checks a holder's fence, and on a claim raises it.
-- KEYS[1] meta
-- ARGV[1] 'raise' (a claim: returns the new fence) or 'check' (returns the current state)
-- ARGV[2] the holder's fence (for 'check')
-- Returns: raise → the new fence, or -1 when the log is terminal, -2 when it does not exist;
--          check → 'ok', 'lost' or 'closed'.
local meta = redis.call('HMGET', KEYS[1], 'terminal', 'fence')
if ARGV[1] == 'raise' then
  if not meta[2] then return -2 end
  if meta[1] == '1' then return -1 end
  return redis.call('HINCRBY', KEYS[1], 'fence', 1)
end
if not meta[2] or meta[1] == '1' then return 'closed' end
if tonumber(meta[2]) ~= tonumber(ARGV[2]) then return 'lost' end
return 'ok'
