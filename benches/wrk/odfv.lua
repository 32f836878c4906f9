-- wrk script: reads of one entity against the on-demand benchmark repo (benches/ondemand/).
-- MODE=plain: the three stored features of driver_hourly_stats (read 1 x 3);
-- MODE=odfv: driver_score:score, a python-mode on-demand view computed from those three.
-- ENTITIES=N: driver ids drawn from 1..N (pushed beforehand by benches/scripts/odfv_bench.sh).
-- DELAY_MS=D: each connection waits D ms between requests (a paced load: with C connections
-- about C * 1000 / (D + latency) requests/s), for latency below the peak.
local mode = os.getenv("MODE") or "odfv"
local entities = tonumber(os.getenv("ENTITIES") or "10000")
local bodies = {}
local n = 0
math.randomseed(42)

local features
if mode == "plain" then
  features = '"driver_hourly_stats:conv_rate","driver_hourly_stats:acc_rate","driver_hourly_stats:avg_daily_trips"'
else
  features = '"driver_score:score"'
end
for i = 1, 512 do
  bodies[i] = '{"features":[' .. features .. '],"entities":{"driver_id":[' .. math.random(1, entities) .. ']}}'
end

local delay_ms = tonumber(os.getenv("DELAY_MS") or "0")
if delay_ms > 0 then
  delay = function() return delay_ms end
end

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  n = n % 512 + 1
  return wrk.format(nil, "/get-online-features", nil, bodies[n])
end

local non2xx = 0
response = function(status, headers, body)
  if status ~= 200 then
    non2xx = non2xx + 1
    if non2xx <= 3 then io.stderr:write("answer " .. status .. ": " .. body .. "\n") end
  end
end
