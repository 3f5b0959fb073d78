-- wrk script: each thread posts the signed callbacks of its own pool file, one per request,
-- so every request is a distinct callback. Set HERALD_BENCH_POOL to the pool's prefix.
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

function request()
  local line = pool:read("*l")
  if not line then
    -- The pool is used up: start again (later callbacks repeat earlier ones) and say so.
    wrapped = wrapped + 1
    pool:seek("set", 0)
    line = pool:read("*l")
  end
  local tab = line:find("\t", 1, true)
  return wrk.format("POST", "/hooks/sentry", {
    ["Content-Type"] = "application/json",
    ["Sentry-Hook-Resource"] = "issue",
    ["Sentry-Hook-Signature"] = line:sub(1, tab - 1),
  }, line:sub(tab + 1))
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
