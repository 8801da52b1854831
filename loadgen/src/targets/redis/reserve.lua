-- reserve: KEYS sku:{S} holds:{S} order:O units:{S}:U; ARGV now_ms O U S qty.
-- Order of checks is the engine's: dedup, unknown SKU, qty 0, stock, qty over the limit, sale window,
-- per-user limit.
local sku_key, holds_key, order_key, units_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, order_id, user_id, sku_id, qty_s = tonumber(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local qty = tonumber(qty_s)

-- 1. Dedup: a retry never takes stock twice. The same request gets the order's current state
--    (after expiring what is due, so a lapsed hold reads as expired); another request reusing
--    the id is a conflict.
local existing = redis.call('HMGET', order_key, 'u', 's', 'q')
if existing[1] then
  if existing[1] ~= user_id or existing[2] ~= sku_id or existing[3] ~= qty_s then
    return {-6}
  end
  expire_due(sku_key, holds_key, sku_id, now)
  local o = redis.call('HMGET', order_key, 'st', 'x')
  return {2, tonumber(o[1]), tonumber(o[2]), tonumber(sku_id), qty}
end

local sku = redis.call('HMGET', sku_key, 'limit', 'ttl', 'start', 'end', 'maxu')
if not sku[1] then
  return {-4}
end
now = expire_due(sku_key, holds_key, sku_id, now)
local limit = tonumber(sku[1])
-- The engine's order of checks (docs/protocol.md): qty 0, then stock, then qty over the limit,
-- the window and the per-user limit.
if qty < 1 then
  return {-5}
end
local available = tonumber(redis.call('HGET', sku_key, 'available'))
if available < qty then
  return {-1}
end
if qty > limit then
  return {-5}
end
if (sku[3] and now < tonumber(sku[3])) or (sku[4] and now >= tonumber(sku[4])) then
  return {-3}
end
-- 2. The per-user limit counts held + paid units; stock was checked above, and an over-limit
--    user still never burns stock (nothing is taken before this check).
local units = tonumber(redis.call('GET', units_key) or '0')
if units + qty > limit then
  return {-2}
end
redis.call('HINCRBY', sku_key, 'available', -qty)
redis.call('HINCRBY', sku_key, 'held', qty)
if units + qty > tonumber(sku[5]) then
  redis.call('HSET', sku_key, 'maxu', units + qty)
end
redis.call('INCRBY', units_key, qty)
local expires_at = now + tonumber(sku[2])
redis.call('HSET', order_key, 'u', user_id, 's', sku_id, 'q', qty_s, 'st', 0, 'x', expires_at)
redis.call('ZADD', holds_key, expires_at, order_id)
return {1, 0, expires_at, tonumber(sku_id), qty}
