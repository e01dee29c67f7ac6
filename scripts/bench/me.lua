-- GET /api/v1/me with a valid bearer token.
-- Usage: wrk ... -s me.lua http://127.0.0.1:PORT/api/v1/me -- ACCESS_TOKENS_FILE
-- Each thread takes one access token of the file (one per line). The request is static
-- (built once per thread), so wrk spends no Lua time per request.
dofile(debug.getinfo(1, "S").source:match("^@(.*/)") .. "common.lua")

function init(args)
   local tokens = read_lines(args[1])
   wrk.method = "GET"
   wrk.headers["Authorization"] = "Bearer " .. tokens[(id - 1) % #tokens + 1]
   wrk.headers["Accept"] = "application/json"
end
