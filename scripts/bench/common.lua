-- Shared by the wrk scripts of `make bench` (loaded with dofile from each script).
--
-- Gives every wrk thread an `id` (1..threads) in setup(), and prints one machine-readable
-- line in done():
--   BENCH requests=N duration_s=S rps=R ok=N ok_rps=R non2xx=N p50_ms=.. p90_ms=.. p99_ms=..
--         max_ms=.. err_connect=N err_read=N err_write=N err_timeout=N starved=N
-- `non2xx` counts responses whose status is not the expected one (scripts that define
-- response() set `expected` and count `bad` per thread); scripts without response() fall
-- back on wrk's own count of statuses > 399.

local threads = {}

function setup(thread)
   table.insert(threads, thread)
   thread:set("id", #threads)
end

-- Lines of a file, without empty ones.
function read_lines(path)
   local file = assert(io.open(path, "r"), "cannot open " .. tostring(path))
   local lines = {}
   for line in file:lines() do
      if line ~= "" then
         table.insert(lines, line)
      end
   end
   file:close()
   assert(#lines > 0, "no lines in " .. path)
   return lines
end

-- The lines of `path` that belong to thread `id` of `count` (round robin).
function share_of(path, count)
   local mine = {}
   for i, line in ipairs(read_lines(path)) do
      if (i - 1) % count == id - 1 then
         table.insert(mine, line)
      end
   end
   assert(#mine > 0, "thread " .. id .. " got no lines of " .. path)
   return mine
end

function done(summary, latency, requests)
   local counted, bad, starved = false, 0, 0
   for _, thread in ipairs(threads) do
      if thread:get("counted") then
         counted = true
         bad = bad + (thread:get("bad") or 0)
         starved = starved + (thread:get("starved") or 0)
      end
   end
   local e = summary.errors
   local non2xx = counted and bad or e.status
   local secs = summary.duration / 1e6
   local ok = summary.requests - non2xx
   io.write(string.format(
      "BENCH requests=%d duration_s=%.3f rps=%.2f ok=%d ok_rps=%.2f non2xx=%d " ..
      "p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
      "err_connect=%d err_read=%d err_write=%d err_timeout=%d starved=%d\n",
      summary.requests, secs, summary.requests / secs, ok, ok / secs, non2xx,
      latency:percentile(50) / 1000, latency:percentile(90) / 1000,
      latency:percentile(99) / 1000, latency.max / 1000,
      e.connect, e.read, e.write, e.timeout, starved))
end
