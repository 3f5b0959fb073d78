-- wrk script: each thread posts the signed callbacks of its own pool file, one per request,
-- so every request is a distinct callback (bench/pool.lua). Set HERALD_BENCH_POOL to the pool's
-- prefix.
dofile("bench/pool.lua")

function request()
  local line = next_line()
  local tab = line:find("\t", 1, true)
  return wrk.format("POST", "/hooks/sentry", {
    ["Content-Type"] = "application/json",
    ["Sentry-Hook-Resource"] = "issue",
    ["Sentry-Hook-Signature"] = line:sub(1, tab - 1),
  }, line:sub(tab + 1))
end
