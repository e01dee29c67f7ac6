-- POST /api/v1/auth/login, round robin over seeded accounts.
-- Usage: wrk ... -s login.lua http://127.0.0.1:PORT/api/v1/auth/login -- EMAILS_FILE PASSWORD
-- Any status but 200 counts as an error (a 200 carrying mfa_required would too, as it has
-- no access token).
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

local bodies, next_body = {}, 1
local headers = { ["Content-Type"] = "application/json", ["Accept"] = "application/json" }

function init(args)
   for _, email in ipairs(read_lines(args[1])) do
      table.insert(bodies, '{"email":"' .. email .. '","password":"' .. args[2] .. '"}')
   end
   -- Threads start at different accounts.
   next_body = (id - 1) % #bodies + 1
   counted, bad, starved = true, 0, 0
end

function request()
   local body = bodies[next_body]
   next_body = next_body % #bodies + 1
   return wrk.format("POST", nil, headers, body)
end

function response(status, _, body)
   if status ~= 200 or not body:find('"access_token"', 1, true) then
      bad = bad + 1
   end
end
