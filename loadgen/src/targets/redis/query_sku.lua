-- query SKU: KEYS sku:{S} holds:{S}; ARGV now_ms S. Expires what is due first, then answers
-- sku_answer(4), or {} for an unknown SKU.
local sku_key, holds_key = KEYS[1], KEYS[2]
if not redis.call('HGET', sku_key, 'total') then
  return {}
end
expire_due(sku_key, holds_key, ARGV[2], tonumber(ARGV[1]))
return sku_answer(4, sku_key)
