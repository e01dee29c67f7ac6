-- POST /api/v1/auth/refresh with chained rotation.
-- Usage: wrk ... -s refresh.lua http://127.0.0.1:PORT/api/v1/auth/refresh -- REFRESH_TOKENS_FILE THREADS
--
-- Every refresh token is single use, so each thread owns a pool (a FIFO queue) of refresh
-- tokens of distinct sessions: request() takes one, response() puts back the rotated
-- successor from the 200 body. No token is ever presented twice, so the reuse grace window
-- never comes into play. The pool must be larger than the connections per thread; a
-- request that finds it empty (tokens lost to errors) is sent with an invalid token, and
-- counted in `starved` and as non-2xx. Any status but 200 counts as an error.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local queue, first, last = {}, 1, 0

local function push(token)
   last = last + 1
   queue[last] = token
end

local function pop()
   if first > last then
      return nil
   end
   local token = queue[first]
   queue[first] = nil
   first = first + 1
   return token
end

local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }

function init(args)
   for _, token in ipairs(share_of(args[1], tonumber(args[2]))) do
      push(token)
   end
   counted, bad, starved = true, 0, 0
end

function request()
   local token = pop()
   if token == nil then
      starved = starved + 1
      token = "starved"
   end
   return wrk.format("POST", nil, headers, '{"refresh_token":"' .. token .. '"}')
end

function response(status, _, body)
   if status ~= 200 then
      bad = bad + 1
      return
   end
   local token = body:match('"refresh_token"%s*:%s*"([^"]+)"')
   if token then
      push(token)
   else
      bad = bad + 1
   end
end
