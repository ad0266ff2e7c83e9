-- wrk script of tests/e2e/test_soak.py: a mix of requests, each thread stopping after its share.
--
-- SOAK_REQUESTS: a file of lines "METHOD<TAB>PATH<TAB>BODY" (BODY may be empty), sent in turn, each
-- thread (and each connection) starting at another line. SOAK_LIMIT: answers per thread, after which
-- the thread stops and creates the file SOAK_DONE.<thread number> (wrk itself runs until its -d
-- duration or SIGINT: the test sends SIGINT once every thread is done). The last line printed is "SOAKJSON {...}": wrk's counts, latency percentiles
-- (microseconds) and the answers that were not a 200 with a JSON body free of errors ("bad"), by
-- status, with the first bad body.
local threads = {}
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("index", counter)
  table.insert(threads, thread)
end

function init(args)
  requests = {}
  for line in io.lines(os.getenv("SOAK_REQUESTS")) do
    local method, path, body = line:match("^([^\t]+)\t([^\t]+)\t?(.*)$")
    if body == "" then body = nil end
    local headers = {}
    if body then headers["Content-Type"] = "application/json" end
    table.insert(requests, wrk.format(method, path, headers, body))
  end
  limit = tonumber(os.getenv("SOAK_LIMIT"))
  position = (index * 7) % #requests
  answers = 0
  bad = 0
  statuses = {}
  first_bad = ""
end

function request()
  position = position % #requests + 1
  return requests[position]
end

function response(status, headers, body)
  answers = answers + 1
  local wrong = status ~= 200 or body:sub(1, 1) ~= "{" or body:find('"errorCode"', 1, true)
                or body:find('"signatureValid":false', 1, true)
  if wrong then
    bad = bad + 1
    statuses[status] = (statuses[status] or 0) + 1
    if first_bad == "" then first_bad = tostring(status) .. " " .. body:sub(1, 200) end
  end
  if answers == limit then
    local marker = io.open(os.getenv("SOAK_DONE") .. "." .. index, "w")
    if marker then marker:close() end
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local bad_total, by_status, first = 0, {}, ""
  for _, thread in ipairs(threads) do
    bad_total = bad_total + thread:get("bad")
    for status, count in pairs(thread:get("statuses")) do
      by_status[#by_status + 1] = string.format('"%d": %d', status, count)
    end
    if first == "" then first = thread:get("first_bad") end
  end
  first = first:gsub('\\', '\\\\'):gsub('"', '\\"'):gsub('%c', ' ')
  io.write(string.format(
    'SOAKJSON {"requests": %d, "duration_us": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "bad": %d, "bad_by_status": {%s}, ' ..
    '"first_bad": "%s", "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.connect, summary.errors.read, summary.errors.write,
    summary.errors.status, summary.errors.timeout, bad_total, table.concat(by_status, ", "), first,
    latency:percentile(50), latency:percentile(99), latency.max))
end
