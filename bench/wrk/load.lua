-- One wrk script for every bench load, driven by environment variables (read in each thread):
--   WRK_METHOD  GET (default) or POST
--   WRK_PATHS   one or more request paths separated by "|", taken in turn (per thread)
--   WRK_BODY    POST body; "{n}" is replaced by a number unique across threads and requests
--   WRK_AUTH    the Authorization header value, if any
--   WRK_REPORT  where done() writes the summary as JSON
local counter = 0
local thread_no = 0
local threads = {}
local method = os.getenv("WRK_METHOD") or "GET"
local body = os.getenv("WRK_BODY")
local auth = os.getenv("WRK_AUTH")
local paths = {}
for p in string.gmatch(os.getenv("WRK_PATHS") or "/", "[^|]+") do
  table.insert(paths, p)
end

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  wrk.headers["Content-Type"] = "application/json"
  if auth and auth ~= "" then
    wrk.headers["Authorization"] = auth
  end
end

function request()
  counter = counter + 1
  local path = paths[(counter + thread_no) % #paths + 1]
  if method == "POST" then
    local unique = tostring(thread_no * 100000000 + counter)
    return wrk.format("POST", path, nil, (string.gsub(body, "{n}", unique)))
  end
  return wrk.format(method, path)
end

function done(summary, latency, requests)
  local out = io.open(os.getenv("WRK_REPORT"), "w")
  local e = summary.errors
  out:write(string.format(
    '{"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d}, "latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p95": %d, ' ..
    '"p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(95),
    latency:percentile(99), latency.max))
  out:close()
end
