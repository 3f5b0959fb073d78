-- wrk script for Prometheus Alertmanager: each request posts one distinct firing alert to
-- /api/v2/alerts (a unique label per request), the same size class as a Sentry callback's alert.
-- BENCH_SLICE (a number), if set, keeps a run's alerts apart from those of the runs before it
-- against the same Alertmanager (bench/alternating.sh). BENCH_THINK_MS: pauses between requests
-- (bench/think.lua).
dofile("bench/think.lua")
local slice = tonumber(os.getenv("BENCH_SLICE") or "0")
local counter = 0
local next_thread = 0

-- thread_index is a global of each thread's own state, set here before the thread starts (a local
-- of the same name would hide it from request(), and every thread would post the same alerts).
function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function request()
  counter = counter + 1
  local id = slice * 1000000000 + thread_index * 100000000 + counter
  local body = string.format('[{"labels":{"alertname":"SentryIssue","issue":"%d","project":"python","level":"error"},' ..
    '"annotations":{"title":"ValueError: benchmark alert %d","link":"https://example-org.sentry.io/issues/%d/"},' ..
    '"generatorURL":"https://example-org.sentry.io/issues/%d/"}]', id, id, id, id)
  return wrk.format("POST", "/api/v2/alerts", {["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d errors_other=%d seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f pool_wraps=0\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
