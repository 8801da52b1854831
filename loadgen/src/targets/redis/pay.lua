-- pay: KEYS order:O; ARGV now_ms O U. The order's SKU comes from the order hash, so the SKU's
-- keys are derived here rather than passed (the client knows only the order id).
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
if status == 2 then
  return {-10}
elseif status == 3 then
  return {-9}
elseif status == 0 then
  redis.call('HSET', order_key, 'st', 1)
  redis.call('ZREM', holds_key, order_id)
  redis.call('HINCRBY', sku_key, 'held', -qty)
  redis.call('HINCRBY', sku_key, 'sold', qty)
  status = 1
end
-- Paid (now or before: paying twice is idempotent).
return {2, status, tonumber(s[2]), tonumber(sku_id), qty}
