-- What the wrk scripts that post a pool share (bench/sentry.lua, bench/sdk.lua): each thread
-- reads its own pool file (`$HERALD_BENCH_POOL.<thread>`), one line a request, starting again
-- when it is used up (and saying so in the RESULT line). A script defines request() with
-- next_line(). HERALD_BENCH_OFFSETS ("o0,o1,..."), if set, is where each thread starts in its
-- file: the RESULT line's offsets= from the run before, so that runs in turn post distinct
-- callbacks (bench/alternating.sh). BENCH_THINK_MS: pauses between requests (bench/think.lua).
dofile("bench/think.lua")
local prefix = os.getenv("HERALD_BENCH_POOL")
local offsets = os.getenv("HERALD_BENCH_OFFSETS") or ""
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
  offset = 0
  local index = 0
  for start in offsets:gmatch("%d+") do
    if index == thread_index then offset = tonumber(start) end
    index = index + 1
  end
  pool:seek("set", offset)
end

-- The thread's next line; when the pool is used up, it starts again (later requests repeat
-- earlier ones).
function next_line()
  local line = pool:read("*l")
  if not line then
    wrapped = wrapped + 1
    pool:seek("set", 0)
    offset = 0
    line = pool:read("*l")
  end
  offset = offset + #line + 1
  return line
end

function done(summary, latency, requests)
  local wraps = 0
  local ends = {}
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("wrapped") or 0)
    table.insert(ends, string.format("%d", thread:get("offset") or 0))
  end
  io.write(string.format("RESULT requests=%d errors_status=%d errors_other=%d seconds=%.2f rate=%.0f p50_ms=%.2f p99_ms=%.2f max_ms=%.2f pool_wraps=%d offsets=%s\n",
    summary.requests, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000, wraps, table.concat(ends, ",")))
end
