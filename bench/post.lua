-- wrk script: POST the body in $BENCH_BODY_FILE (default "return 1+1") with a bearer token.
local file = os.getenv("BENCH_BODY_FILE")
local body = "return 1+1"
if file and file ~= "" then
  local f = assert(io.open(file, "rb"))
  body = f:read("a")
  f:close()
end
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
local token = os.getenv("BENCH_TOKEN")
if token and token ~= "" then
  wrk.headers["Authorization"] = "Bearer " .. token
end
