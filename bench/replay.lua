-- wrk script: replays pre-signed, distinct webhook requests (one per line of a TSV file),
-- each thread taking every Nth line, and counts answers by status class.
-- usage: wrk -t2 -c64 -d10s -s bench/replay.lua URL -- requests.tsv 2
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  reqs = {}
  local n = 0
  for line in io.lines(path) do
    if n % nthreads == tid then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      local headers = {
        ["Content-Type"] = "application/json",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
      }
      table.insert(reqs, wrk.format("POST", nil, headers, body))
    end
    n = n + 1
  end
  i = 0
  ok = 0
  bad = 0
  exhausted = 0
end

function request()
  i = i + 1
  if i > #reqs then
    exhausted = 1
    i = 1
  end
  return reqs[i]
end

function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else bad = bad + 1 end
end

function done(summary, latency, requests)
  local total_ok, total_bad, ex = 0, 0, 0
  for _, t in ipairs(threads) do
    total_ok = total_ok + t:get("ok")
    total_bad = total_bad + t:get("bad")
    ex = ex + t:get("exhausted")
  end
  io.write(string.format("RESULT ok=%d bad=%d exhausted=%d p50_us=%d p99_us=%d rps=%.1f\n",
    total_ok, total_bad, ex, latency:percentile(50), latency:percentile(99),
    summary.requests / (summary.duration / 1e6)))
end
