-- cancel: KEYS order:O; ARGV now_ms O U. A held order's units go back to available and to the
-- user's allowance; cancelling twice is idempotent.
local order_key = KEYS[1]
local now, order_id, user_id = tonumber(ARGV[1]), ARGV[2], ARGV[3]
local o = redis.call('HMGET', order_key, 'u', 's', 'q')
if not o[1] then
  return {-7}
end
if o[1] ~= user_id then
  return {-8}
end
local sku_id, qty = o[2], tonumber(o[3])
local sku_key, holds_key = 'sku:{' .. sku_id .. '}', 'holds:{' .. sku_id .. '}'
expire_due(sku_key, holds_key, sku_id, now)
local s = redis.call('HMGET', order_key, 'st', 'x')
local status = tonumber(s[1])
if status == 1 then
  return {-11}
elseif status == 3 then
  return {-9}
elseif status == 0 then
  redis.call('HSET', order_key, 'st', 2)
  redis.call('ZREM', holds_key, order_id)
  redis.call('HINCRBY', sku_key, 'held', -qty)
  redis.call('HINCRBY', sku_key, 'available', qty)
  local units_key = 'units:{' .. sku_id .. '}:' .. user_id
  if redis.call('DECRBY', units_key, qty) <= 0 then
    redis.call('DEL', units_key)
  end
  status = 2
end
return {2, status, tonumber(s[2]), tonumber(sku_id), qty}
