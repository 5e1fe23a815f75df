-- One wrk script for every bench load, driven by environment variables (read in each thread):
--   WRK_METHOD  GET (default) or POST
--   WRK_PATHS   one or more request paths separated by "|", taken in turn (per thread)
--   WRK_BODY    POST body; "{n}" is replaced by a number unique across threads and requests,
--               "{words}" by 8-14 pseudo-words from a 2,000-word vocabulary (claims share words, as
--               real ones do, without being near-duplicates of one another)
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

local vocab = {}

local function build_vocab()
  local consonants = {"b", "c", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z"}
  local vowels = {"a", "e", "i", "o", "u"}
  math.randomseed(20261127)
  local seen = {}
  while #vocab < 2000 do
    local w = ""
    for _ = 1, math.random(2, 4) do
      w = w .. consonants[math.random(#consonants)] .. vowels[math.random(#vowels)]
    end
    if not seen[w] then
      seen[w] = true
      table.insert(vocab, w)
    end
  end
end

local function words()
  local out = {}
  for i = 1, math.random(8, 14) do
    out[i] = vocab[math.random(#vocab)]
  end
  return table.concat(out, " ")
end

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  build_vocab()
  math.randomseed(thread_no * 7919 + os.time())
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
    local text = string.gsub(body, "{n}", unique)
    text = string.gsub(text, "{words}", words)
    return wrk.format("POST", path, nil, text)
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
