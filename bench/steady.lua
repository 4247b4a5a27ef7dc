-- wrk script for `make bench` --sustained: webhooks.lua's requests at a steady offered rate.
-- Each thread sends its share of the rate on a fixed schedule (slot k at start + k/rate),
-- whichever of its connections is free takes the next slot: arrivals do not slow down
-- when the service does, as long as enough connections are open.
-- Usage: wrk ... -s steady.lua URL -- <tag> <outdir> <webhooks per second per thread>

local here = debug.getinfo(1, "S").source:match("@(.*/)") or "./"
dofile(here .. "webhooks.lua")

local ffi = require("ffi")
ffi.cdef [[
   typedef struct { long tv_sec; long tv_usec; } bench_timeval;
   int gettimeofday(bench_timeval *tv, void *tz);
]]
local tv = ffi.new("bench_timeval")

local function now_ms()
   ffi.C.gettimeofday(tv, nil)
   return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end

local base_init = init
local interval, started, slot

function init(args)
   base_init(args)
   interval = 1000 / tonumber(args[3])
   slot = 0
end

function delay()
   started = started or now_ms()
   slot = slot + 1
   return math.max(0, started + slot * interval - now_ms())
end
