-- wrk script: each thread posts the SDK envelopes of its own pool file, one per request.
-- HERALD_BENCH_POOL is the pool's prefix, HERALD_BENCH_KEY the project's public key.
local prefix = os.getenv("HERALD_BENCH_POOL")
local key = os.getenv("HERALD_BENCH_KEY")
local next_thread = 0
local threads = {}

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
  table.insert(threads, thread)
end

function init(args)
  pool = assert(io.open(prefix .. "." .. thread_index, "r"))
  wrapped = 0
end

function request()
  local line = pool:read("*l")
  if not line then
    wrapped = wrapped + 1
    pool:seek("set", 0)
    line = pool:read("*l")
  end
  return wrk.format("POST", "/api/42/envelope/", {
    ["Content-Type"] = "application/x-sentry-envelope",
    ["X-Sentry-Auth"] = "Sentry sentry_key=" .. key .. ", sentry_version=7, sentry_client=sentry.python/2.75.0",
  }, (line:gsub("\1", "\n")))
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do wraps = wraps + (thread:get("wrapped") or 0) end
  io.write(string.format("RESULT requests=%d errors_status=%d errors_other=%d rate=%.0f p50_ms=%.2f p99_ms=%.2f pool_wraps=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, wraps))
end
