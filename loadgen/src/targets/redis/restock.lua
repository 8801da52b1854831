-- restock: KEYS sku:{S} holds:{S}; ARGV now_ms S delta. The new total may not drop below the
-- held + sold units nor exceed 2^48 (the engine's MAX_STOCK_TOTAL).
local sku_key, holds_key = KEYS[1], KEYS[2]
local now, sku_id, delta = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
if not redis.call('HGET', sku_key, 'total') then
  return {-4}
end
expire_due(sku_key, holds_key, sku_id, now)
local s = redis.call('HMGET', sku_key, 'total', 'held', 'sold')
local held, sold = tonumber(s[2]), tonumber(s[3])
local total = tonumber(s[1]) + delta
if total < held + sold or total > 281474976710656 then
  return {-12}
end
redis.call('HSET', sku_key, 'total', total, 'available', total - held - sold)
return sku_answer(4, sku_key)
