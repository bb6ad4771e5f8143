-- Spends from a key's model-token budget of one window, unless that would pass the limit.
-- KEYS[1] the window's counter (a string holding the tokens spent in it)
-- ARGV[1] tokens to spend, ARGV[2] limit, ARGV[3] the counter's lifetime (ms: past the window's end)
-- Returns the tokens spent in the window after this call, or -1 when the spend was refused (nothing changes).
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
if spent + tonumber(ARGV[1]) > tonumber(ARGV[2]) then return -1 end
spent = redis.call('INCRBY', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return spent
