-- wrk script: posts each signed callback of the thread's pool file once. When a thread has used up
-- its pool it writes `<prefix>.done.<thread>` and sends only health checks; the caller stops wrk
-- (SIGINT) once every thread is done. Set HERALD_BENCH_POOL to the pool's prefix.
local prefix = os.getenv("HERALD_BENCH_POOL")
local next_thread = 0

function setup(thread)
  thread:set("thread_index", next_thread)
  next_thread = next_thread + 1
end

function init(args)
  pool = assert(io.open(prefix .. "." .. thread_index, "r"))
  finished = false
end

function request()
  local line = pool:read("*l")
  if not line then
    if not finished then
      finished = true
      assert(io.open(prefix .. ".done." .. thread_index, "w")):close()
    end
    return wrk.format("GET", "/healthz")
  end
  local tab = line:find("\t", 1, true)
  return wrk.format("POST", "/hooks/sentry", {
    ["Content-Type"] = "application/json",
    ["Sentry-Hook-Resource"] = "event_alert",
    ["Sentry-Hook-Signature"] = line:sub(1, tab - 1),
  }, line:sub(tab + 1))
end

function done(summary, latency, requests)
  io.write(string.format("RESULT requests=%d errors_status=%d seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f\n",
    summary.requests, summary.errors.status, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000))
end
