-- What the wrk scripts that post a pool share (bench/sentry.lua, bench/sdk.lua): each thread
-- reads its own pool file (`$HERALD_BENCH_POOL.<thread>`), one line a request, starting again
-- when it is used up (and saying so in the RESULT line). A script defines request() with
-- next_line().
local prefix = os.getenv("HERALD_BENCH_POOL")
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

-- The thread's next line; when the pool is used up, it starts again (later requests repeat
-- earlier ones).
function next_line()
  local line = pool:read("*l")
  if not line then
    wrapped = wrapped + 1
    pool:seek("set", 0)
    line = pool:read("*l")
  end
  return line
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do wraps = wraps + (thread:get("wrapped") or 0) end
  io.write(string.format("RESULT requests=%d errors_status=%d errors_other=%d seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f pool_wraps=%d\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, wraps))
end
