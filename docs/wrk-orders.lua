-- wrk script: POST /v1/orders with a unique order id per request (per thread id range) against
-- SKU 1 (create it first with a large stock and per_user_limit, see docs/notes/server-notes.md).
-- Ids start from a per-run base taken from the clock, so back-to-back runs against the same
-- server create new orders instead of answering 409 id_conflict for the previous run's ids.
--   wrk -t2 -c64 -d10s -s docs/wrk-orders.lua http://127.0.0.1:8080
local threads = {}
local next_thread = 1
-- < 2^53 so LuaJIT's doubles stay exact: base up to 1e15, thread 1e9 apart, counter < 1e9.
local run_base = (os.time() % 100000) * 10000000000

function setup(thread)
  thread:set("tid", next_thread)
  thread:set("run_base", run_base)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  counter = 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local order_id = run_base + tid * 1000000000 + counter
  local body = string.format('{"order_id":%d,"user_id":%d,"sku_id":1,"qty":1}', order_id, order_id)
  return wrk.format("POST", "/v1/orders", nil, body)
end

function response(status, headers, body)
  if status ~= 201 then
    errors = (errors or 0) + 1
  end
end

function done(summary, latency, requests)
  local non_201 = 0
  for _, thread in ipairs(threads) do
    non_201 = non_201 + (thread:get("errors") or 0)
  end
  io.write(string.format("non-201 responses: %d\n", non_201))
end
