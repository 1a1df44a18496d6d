-- wrk's done() hook for bench/generate.lua and bench/verify.lua: one line
-- with the tail of the latency distribution, read by bench/run.
done = function(summary, latency, requests)
  local parts = {}
  for _, p in ipairs({ 50, 90, 99, 99.9 }) do
    parts[#parts + 1] = string.format("p%s %.2f", p, latency:percentile(p) / 1000)
  end
  io.write(string.format("tail (ms): %s, max %.2f\n", table.concat(parts, ", "), latency.max / 1000))
end
