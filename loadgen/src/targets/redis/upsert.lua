-- upsert SKU: KEYS sku:{S} holds:{S}; ARGV now_ms S total limit ttl start end price
-- (start / end '' for none). The settings were validated by the client (SkuConfig::validate).
-- An existing SKU keeps its held and sold units: the new total may not be below them, nor the
-- new limit below the most units one user has held at once.
local sku_key, holds_key = KEYS[1], KEYS[2]
local now, sku_id = tonumber(ARGV[1]), ARGV[2]
local total, limit = tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = redis.call('HMGET', sku_key, 'held', 'sold', 'maxu')
local held, sold, created = 0, 0, not cur[1]
if created then
  redis.call('HSET', sku_key, 'held', 0, 'sold', 0, 'maxu', 0, 'clock', 0)
else
  expire_due(sku_key, holds_key, sku_id, now)
  cur = redis.call('HMGET', sku_key, 'held', 'sold', 'maxu')
  held, sold = tonumber(cur[1]), tonumber(cur[2])
  if total < held + sold then
    return {-12}
  end
  if limit < tonumber(cur[3]) then
    return {-13}
  end
end
redis.call('HSET', sku_key, 'total', total, 'available', total - held - sold, 'limit', limit,
  'ttl', ARGV[5], 'price', ARGV[8])
if ARGV[6] == '' then redis.call('HDEL', sku_key, 'start') else redis.call('HSET', sku_key, 'start', ARGV[6]) end
if ARGV[7] == '' then redis.call('HDEL', sku_key, 'end') else redis.call('HSET', sku_key, 'end', ARGV[7]) end
if created then
  return sku_answer(3, sku_key)
end
return sku_answer(4, sku_key)
