-- wrk script: each thread posts the SDK envelopes of its own pool file, one per request
-- (bench/pool.lua). HERALD_BENCH_POOL is the pool's prefix, HERALD_BENCH_KEY the project's
-- public key.
dofile("bench/pool.lua")
local key = os.getenv("HERALD_BENCH_KEY")

function request()
  -- An envelope is kept on one line of the pool, its newlines written as \1.
  return wrk.format("POST", "/api/42/envelope/", {
    ["Content-Type"] = "application/x-sentry-envelope",
    ["X-Sentry-Auth"] = "Sentry sentry_key=" .. key .. ", sentry_version=7, sentry_client=sentry.python/2.75.0",
  }, (next_line():gsub("\1", "\n")))
end
