-- POST /VerifyOTP for random unknown addresses: the lookup path.
local thread_id = 0
local n = 0
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
init = function()
  math.randomseed(os.time() * 1000 + 7 + (tid or 0))
end
request = function()
  n = n + 1
  local body = string.format('{"email":"v%d-%d-%d@bench.example","otp":"123456"}', tid or 0, math.random(1, 1000000000), n)
  return wrk.format("POST", "/VerifyOTP", { ["Content-Type"] = "application/json" }, body)
end
-- done(): the latency tail line bench/run reads.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "tail.lua")
