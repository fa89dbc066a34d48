-- wrk script: every request carries a random token from the file named by
-- the environment variable BENCH_TOKENS (one opaque token per line).
local tokens = {}
local path = os.getenv("BENCH_TOKENS") or error("BENCH_TOKENS is not set")
local req_path = os.getenv("BENCH_PATH") or "/api/bench"

function init(args)
  for line in io.lines(path) do
    if #line > 0 then
      tokens[#tokens + 1] = "Bearer " .. line
    end
  end
  if #tokens == 0 then error("no tokens in " .. path) end
  -- distinct sequences per thread
  local addr = tonumber((tostring({}):match("0x(%x+)")) or "0", 16) or 0
  math.randomseed(os.time() + addr % 1000003)
end

local headers = {}

function request()
  headers["Authorization"] = tokens[math.random(#tokens)]
  return wrk.format("GET", req_path, headers)
end
