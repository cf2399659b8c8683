-- custom.lua — wrk script: POSTs custom-channel messages, each with a unique id
-- and a valid X-Switchboard-Signature (HMAC-SHA256 of "timestamp.body" under
-- SECRET, computed per request with libcrypto through LuaJIT's FFI).
-- env: SECRET (default bench-secret), RUN_ID (default os.time()), USERS
-- (distinct senders, default 100). done() prints one "WRKJSON {...}" line.
local ffi = require("ffi")
ffi.cdef [[
const void *EVP_sha256(void);
unsigned char *HMAC(const void *md, const void *key, int key_len, const unsigned char *d, size_t n,
                    unsigned char *out, unsigned int *out_len);
]]
local crypto = ffi.load("crypto")

local SECRET = os.getenv("SECRET") or "bench-secret"
local RUN_ID = os.getenv("RUN_ID") or tostring(os.time())
local USERS = tonumber(os.getenv("USERS") or "100")

local threads = {}
local next_tid = 0
function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
  table.insert(threads, thread)
end

local mac = ffi.new("unsigned char[32]")
local mac_len = ffi.new("unsigned int[1]")
local hex = {}
for i = 0, 255 do hex[i] = string.format("%02x", i) end

local function sign(data)
  crypto.HMAC(crypto.EVP_sha256(), SECRET, #SECRET, data, #data, mac, mac_len)
  local out = {}
  for i = 0, 31 do out[i + 1] = hex[mac[i]] end
  return table.concat(out)
end

local n = 0
function request()
  n = n + 1
  local ts = tostring(os.time())
  local body = string.format(
    '{"id":"b-%s-%d-%d","sender":{"id":"user-%d","name":"Bench User"},"text":"Hello, my order %d has not arrived yet.","timestamp":%s}',
    RUN_ID, tid, n, (tid * 7919 + n) % USERS, n, ts)
  return wrk.format("POST", nil, {
    ["Content-Type"] = "application/json",
    ["X-Switchboard-Timestamp"] = ts,
    ["X-Switchboard-Signature"] = "sha256=" .. sign(ts .. "." .. body),
  }, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,"lat_p50_ms":%.3f,"lat_p90_ms":%.3f,"lat_p99_ms":%.3f,' ..
    '"lat_max_ms":%.3f,"err_status":%d,"err_connect":%d,"err_read":%d,"err_write":%d,"err_timeout":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, e.status, e.connect, e.read, e.write, e.timeout))
end
