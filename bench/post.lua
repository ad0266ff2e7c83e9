-- wrk script: POST the JSON body in the file $WRK_BODY (optional header X-Vault-Token: $WRK_TOKEN)
-- and print one machine-readable line with the counts and latency percentiles (microseconds).
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local token = os.getenv("WRK_TOKEN")
if token and token ~= "" then
  wrk.headers["X-Vault-Token"] = token
end

-- With $WRK_KEYS: the body's "@KEY@" becomes $WRK_PREFIX<00000..$WRK_KEYS-1>, round-robin from $WRK_START
-- (bench/pkcs11_rows.py's spread rows; one wrk thread, one counter).
local keys = tonumber(os.getenv("WRK_KEYS") or "")
if keys then
  local template, prefix = wrk.body, os.getenv("WRK_PREFIX")
  local next_key = tonumber(os.getenv("WRK_START") or "0")
  request = function()
    local label = string.format("%s%05d", prefix, next_key % keys)
    next_key = next_key + 1
    return wrk.format(nil, nil, nil, (template:gsub("@KEY@", label)))
  end
end

done = function(summary, latency, requests)
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "bytes": %d, "errors_connect": %d, "errors_read": %d, ' ..
    '"errors_write": %d, "errors_status": %d, "errors_timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end
