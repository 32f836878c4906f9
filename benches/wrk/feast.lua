-- wrk script: Feast JSON requests against featgrid or the ceiling.
-- MODE=read1 | read100 | push100, ENTITIES=N (keys drawn from 0..N-1); ROUTES=fsbench sends the same
-- bodies to the shared ceiling's routes (/get, /push_feast) instead of Feast's
local mode = os.getenv("MODE") or "read1"
local entities = tonumber(os.getenv("ENTITIES") or "10000")
local bodies = {}
local n = 0
math.randomseed(42)

local function ids(count)
  local t = {}
  for i = 1, count do t[i] = tostring(math.random(0, entities - 1)) end
  return t
end

local function rep(s, count)
  local t = {}
  for i = 1, count do t[i] = s end
  return table.concat(t, ",")
end

for i = 1, 512 do
  if mode == "push100" then
    local k = ids(100)
    bodies[i] = '{"push_source_name":"driver_stats_push_source","df":{"driver_id":[' .. table.concat(k, ",") ..
      '],"event_timestamp":[' .. rep('"2026-11-25 10:00:00"', 100) .. '],"conv_rate":[' .. rep("0.5", 100) ..
      '],"acc_rate":[' .. rep("0.9", 100) .. '],"avg_daily_trips":[' .. rep("12", 100) .. ']},"to":"online"}'
  else
    local count = (mode == "read100") and 100 or 1
    bodies[i] = '{"features":["driver_hourly_stats:conv_rate","driver_hourly_stats:acc_rate","driver_hourly_stats:avg_daily_trips"],"entities":{"driver_id":[' ..
      table.concat(ids(count), ",") .. ']}}'
  end
end

local path = (mode == "push100") and "/push" or "/get-online-features"
if os.getenv("ROUTES") == "fsbench" then
  path = (mode == "push100") and "/push_feast" or "/get"
end
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"

request = function()
  n = n % 512 + 1
  return wrk.format(nil, path, nil, bodies[n])
end
