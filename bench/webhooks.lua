-- wrk script for `make bench`: POSTs valid webhooks, each with a transaction_id never
-- sent before (tag, thread number, counter), counts 2xx and non-2xx answers, and writes
-- the transaction_id of every 2xx answer to <outdir>/ok-<thread>.txt so the driver can
-- check that each acknowledged webhook is stored.
-- Usage: wrk ... -s webhooks.lua URL -- <tag> <outdir>

local threads = {}
local counter = 0

function setup(thread)
   counter = counter + 1
   thread:set("tid", counter)
   table.insert(threads, thread)
end

function init(args)
   tag = args[1] or "bench"
   outdir = args[2] or "."
   n = 0
   ok = 0
   bad = 0
   acked = io.open(outdir .. "/ok-" .. tag .. "-" .. tid .. ".txt", "w")
   -- As the TLS-terminating proxy in front of production sends it (see PROXY_HEADERS in run.py).
   headers = {
      ["Content-Type"] = "application/json",
      ["Host"] = wrk.headers["Host"],
      ["X-Forwarded-Proto"] = "https",
   }
end

function request()
   n = n + 1
   local body = string.format(
      '{"transaction_id":"%s_%d_%d","source_account":"acc_user_%d",'
         .. '"destination_account":"acc_merchant_1","amount":%d.%02d,"currency":"INR"}',
      tag, tid, n, n % 1000, 1 + n % 5000, n % 100
   )
   return wrk.format("POST", "/v1/webhooks/transactions", headers, body)
end

function response(status, headers, body)
   if status >= 200 and status < 300 then
      ok = ok + 1
      acked:write(body:match('"transaction_id":"([^"]+)"') or "?", "\n")
      if ok % 1000 == 0 then acked:flush() end
   else
      bad = bad + 1
   end
end

function done(summary, latency, requests)
   local ok_total, bad_total = 0, 0
   for _, t in ipairs(threads) do
      ok_total = ok_total + t:get("ok")
      bad_total = bad_total + t:get("bad")
   end
   local e = summary.errors
   io.write(string.format(
      'BENCH_JSON {"requests":%d,"duration_us":%d,"ok":%d,"non_2xx":%d,'
         .. '"connect_errors":%d,"read_errors":%d,"write_errors":%d,"timeouts":%d,'
         .. '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f}\n',
      summary.requests, summary.duration, ok_total, bad_total,
      e.connect, e.read, e.write, e.timeout,
      latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean
   ))
end
