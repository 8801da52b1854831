-- Prologue shared by every script (redis.rs prepends it). Redis runs one script at a time, so
-- each script below is atomic as a whole: no other command sees a half-applied reserve.
--
-- Keys of one SKU share the hash tag {sku_id}: sku:{S} (hash), holds:{S} (sorted set of held
-- order ids scored by expires_at_ms), units:{S}:U (units user U holds or bought). Orders are
-- order:O (hash: u user, s sku, q qty, st status 0 held 1 paid 2 cancelled 3 expired,
-- x expires_at_ms). Ids are compared as the decimal strings the client sent: Lua numbers are
-- doubles and would round ids above 2^53.
--
-- Time is the client's epoch milliseconds, passed as an argument (as the engine's shards take
-- a time input). Each SKU keeps the latest time it has seen (field clock) and never goes back:
-- requests from several connections may arrive a millisecond out of order, and a hold must
-- not expire, be re-granted, and then be judged at an earlier instant.
--
-- expire_due returns the SKU's (clamped) now after expiring every hold due at it: the holds'
-- stock goes back to available and the units back to the user's allowance. No background
-- thread: expiry happens lazily, before any script reads or changes the SKU, so every answer
-- is the one a background expirer that never lags would give.
local function expire_due(sku_key, holds_key, sku_id, now)
  local clock = tonumber(redis.call('HGET', sku_key, 'clock') or '0')
  if now > clock then
    redis.call('HSET', sku_key, 'clock', now)
  else
    now = clock
  end
  local freed = 0
  while true do
    local due = redis.call('ZRANGEBYSCORE', holds_key, '-inf', now, 'LIMIT', 0, 128)
    if #due == 0 then
      break
    end
    for i = 1, #due do
      local order_key = 'order:' .. due[i]
      local o = redis.call('HMGET', order_key, 'u', 'q')
      local qty = tonumber(o[2])
      redis.call('HSET', order_key, 'st', 3)
      local units_key = 'units:{' .. sku_id .. '}:' .. o[1]
      if redis.call('DECRBY', units_key, qty) <= 0 then
        redis.call('DEL', units_key)
      end
      freed = freed + qty
    end
    redis.call('ZREM', holds_key, unpack(due))
  end
  if freed > 0 then
    redis.call('HINCRBY', sku_key, 'held', -freed)
    redis.call('HINCRBY', sku_key, 'available', freed)
  end
  return now
end

-- Answers are arrays: {tag, status, expires_at_ms, sku_id, qty} for an order (tag 1 created,
-- 2 existing order), {tag, total, limit, ttl, start, end, price, available, held, sold} for a
-- SKU (tag 3 created, 4 existing; start / end -1 for none; see sku_answer below), or
-- {-code} for a refusal, code being the engine's Reject number (1 sold_out, 2 limit_exceeded,
-- 3 not_on_sale, 4 unknown_sku, 5 invalid_qty, 6 id_conflict, 7 unknown_order, 8 not_owner,
-- 9 expired, 10 cancelled, 11 already_paid, 12 invalid_restock, 13 invalid_sku).

local function sku_answer(tag, sku_key)
  local s = redis.call('HMGET', sku_key, 'total', 'limit', 'ttl', 'start', 'end', 'price',
    'available', 'held', 'sold')
  local answer = {tag}
  for i = 1, #s do
    answer[i + 1] = tonumber(s[i] or '-1')
  end
  return answer
end
