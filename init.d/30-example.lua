-- An endpoint and an Action URL, as an appliance adds its own (SPEC V3, V4, V7). Both use the
-- `system` module of 10-system.lua.
--
--   GET /api/v1/exec/status.lua           {"hostname":"box","uptime_s":4242.17,"load":[0.08,0.03,0.01]}
--   GET /api/v1/exec/command?action=toast&text=hello&times=2
--                                         shows "hello" twice (Action URLs are off until
--                                         `exec.actions: true` in luaexecd.conf)
--
-- A token made with `luaexec token create bell --scope endpoint:status.lua` reaches the first
-- and nothing else; `--scope action:toast` the second.

local function json_string(s)
  return '"' .. (s:gsub('[%c"\\]', function(c) return string.format("\\u%04x", c:byte()) end)) .. '"'
end

http.listen("status.lua", function(url, body, headers, request)
  local one, five, fifteen = system.loadavg()
  local answer = string.format('{"hostname":%s,"uptime_s":%.2f,"load":[%.2f,%.2f,%.2f]}',
    json_string(system.hostname() or ""), system.uptime() or 0, one or 0, five or 0, fifteen or 0)
  return 200, answer, { ["Content-Type"] = "application/json" }
end)

http.action("toast", function(text, times)
  times = times or 1
  for _ = 1, times do system.toast(text) end
  return string.format("shown %d time(s)", times)
end, {
  help = "Show a message on the box (here: a line in luaexecd's log).",
  params = {
    { name = "text", type = "string" },
    { name = "times", type = "integer", optional = true },
  },
})
