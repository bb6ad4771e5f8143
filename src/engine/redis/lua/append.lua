-- A fenced, idempotent append (mirrors src/engine/append-rules.ts), and the live notification.
-- KEYS[1] meta, KEYS[2] log
-- ARGV[1] fence, ARGV[2] expected offset, ARGV[3] 1 when the last entry is terminal,
-- ARGV[4] at (ISO time), ARGV[5] notification channel, ARGV[6] retention seconds after the end,
-- ARGV[7..] canonical bodies of the entries, in order.
-- Returns {kind, n}: appended/duplicate with the next offset, staleFence with the current fence,
-- offsetConflict/closed with the last offset, or notFound with 0.
local meta = redis.call('HMGET', KEYS[1], 'last', 'terminal', 'fence')
if not meta[1] then return {'notFound', 0} end
local last = tonumber(meta[1])
local terminal = meta[2] == '1'
local fence = tonumber(meta[3])
local expected = tonumber(ARGV[2])
local count = #ARGV - 6

if expected <= last then
  local same = true
  for i = 1, count do
    local id = (expected + i - 1) .. '-0'
    local found = redis.call('XRANGE', KEYS[2], id, id)
    local body = nil
    if found[1] then
      local fields = found[1][2]
      for j = 1, #fields, 2 do
        if fields[j] == 'b' then body = fields[j + 1] end
      end
    end
    if body ~= ARGV[6 + i] then same = false; break end
  end
  if same then return {'duplicate', expected + count} end
end
if terminal then return {'closed', last} end
if tonumber(ARGV[1]) ~= fence then return {'staleFence', fence} end
if expected ~= last + 1 then return {'offsetConflict', last} end

for i = 1, count do
  redis.call('XADD', KEYS[2], (expected + i - 1) .. '-0', 'b', ARGV[6 + i], 'at', ARGV[4])
end
local newLast = expected + count - 1
redis.call('HSET', KEYS[1], 'last', newLast)
if ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'terminal', 1)
  redis.call('EXPIRE', KEYS[1], ARGV[6])
  redis.call('EXPIRE', KEYS[2], ARGV[6])
end
redis.call('SPUBLISH', ARGV[5], newLast)
return {'appended', newLast + 1}
