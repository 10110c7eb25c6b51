-- wrk script: POST pre-signed Standard Webhooks requests, each at most once per pass.
-- Usage: wrk ... -s signed.lua URL -- <requests file> <threads>
-- Thread i of n sends lines i, i+n, i+2n... of the file; "wrapped" counts how often a
-- thread ran out and started again (repeats, which ihook answers 200 duplicate).
-- done() prints one line "BENCH_JSON {...}" for bench/load.py.

local counter = 0
local threads = {}

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local path, nthreads = args[1], tonumber(args[2])
  reqs = {}
  local i = 0
  for line in io.lines(path) do
    if i % nthreads == tid then
      local id, ts, sig, body = line:match("^([^\t]*)\t([^\t]*)\t([^\t]*)\t(.*)$")
      reqs[#reqs + 1] = wrk.format("POST", nil, {
        ["Content-Type"] = "application/json",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
      }, body)
    end
    i = i + 1
  end
  idx = 0
  wrapped = 0
  counts = {}
end

function request()
  idx = idx + 1
  if idx > #reqs then
    idx = 1
    wrapped = wrapped + 1
  end
  return reqs[idx]
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local statuses = {}
  local wraps = 0
  for _, t in ipairs(threads) do
    for status, n in pairs(t:get("counts")) do
      statuses[status] = (statuses[status] or 0) + n
    end
    wraps = wraps + t:get("wrapped")
  end
  local parts = {}
  for status, n in pairs(statuses) do
    parts[#parts + 1] = string.format('"%d":%d', status, n)
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,' ..
    '"max_us":%d,"connect_errors":%d,"read_errors":%d,"write_errors":%d,' ..
    '"timeouts":%d,"non_2xx":%d,"wrapped":%d,"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.timeout, e.status,
    wraps, table.concat(parts, ",")))
end
