-- POST /GenerateOTP with a fresh random address per request.
local thread_id = 0
local n = 0
setup = function(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
init = function()
  math.randomseed(os.time() * 1000 + (tid or 0))
end
request = function()
  n = n + 1
  local body = string.format('{"email":"b%d-%d-%d@bench.example"}', tid or 0, math.random(1, 1000000000), n)
  return wrk.format("POST", "/GenerateOTP", { ["Content-Type"] = "application/json" }, body)
end
-- One line with the tail of the latency distribution, read by bench/run.
done = function(summary, latency, requests)
  local parts = {}
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    parts[#parts + 1] = string.format("p%s %.2f", p, latency:percentile(p) / 1000)
  end
  io.write(string.format("tail (ms): %s, max %.2f\n", table.concat(parts, ", "), latency.max / 1000))
end
