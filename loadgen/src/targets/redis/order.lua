-- query order: KEYS order:O; ARGV now_ms. Expires what is due on the order's SKU first.
local o = redis.call('HMGET', KEYS[1], 'u', 's', 'q')
if not o[1] then
  return {-7}
end
local sku_id = o[2]
expire_due('sku:{' .. sku_id .. '}', 'holds:{' .. sku_id .. '}', sku_id, tonumber(ARGV[1]))
local s = redis.call('HMGET', KEYS[1], 'st', 'x')
return {2, tonumber(s[1]), tonumber(s[2]), tonumber(sku_id), tonumber(o[3])}
