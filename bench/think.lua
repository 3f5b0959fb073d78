-- Senders that pause between requests, for the wrk scripts that dofile() it: with BENCH_THINK_MS
-- set, each connection waits a random time (exponential, that many milliseconds on average)
-- after each answer before it sends again. Many such connections arrive independently of one
-- another, as the callbacks of many separate senders do, where connections that send again the
-- moment they are answered all come back together. Unset or 0: no pause.
local think_ms = tonumber(os.getenv("BENCH_THINK_MS") or "0")
local seeded = false

if think_ms > 0 then
  function delay()
    -- Each thread its own pauses: seeded by the thread_index its script's setup() gave it.
    if not seeded then
      math.randomseed((thread_index or 0) + 1)
      seeded = true
    end
    return math.floor(-think_ms * math.log(1 - math.random()))
  end
end
