-- The `system` module of a generic Linux box (SPEC V3). An appliance ships its own init
-- scripts beside or instead of this one; everything here is defined in the global state, so
-- a chunk sent to /api/v1/exec/interactive.lua can call it.
--
--   system.toast(message)   shows a message: on a box without a screen, it goes to the log
--   system.log(level, ...)  writes a line to luaexecd's log (the journal when installed):
--                           `lua tag=<level> text=<the values, joined by spaces>`
--   system.hostname()       the kernel's host name
--   system.uptime()         seconds since boot, as a float
--   system.loadavg()        the 1, 5 and 15 minute load averages

system = system or {}

-- Captured here, while the init scripts run with every library: under the restricted profile
-- (lua.profile in luaexecd.conf) chunks have no global `io`, but this API still works; and a
-- chunk that replaces the global `log` does not change where system.log writes.
local io = io
local log = log

local function read_first_line(path)
  local file = io.open(path, "r")
  if not file then return nil end
  local line = file:read("l")
  file:close()
  return line
end

function system.log(level, ...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  -- Through luaexecd's log, never straight to standard error: the log escapes what would
  -- otherwise start a line of its own (a newline in the message).
  log.write(tostring(level), table.concat(parts, " "))
end

function system.toast(message)
  system.log("toast", message)
end

function system.hostname()
  return read_first_line("/proc/sys/kernel/hostname")
end

function system.uptime()
  local line = read_first_line("/proc/uptime")
  return line and tonumber(line:match("^(%S+)"))
end

function system.loadavg()
  local line = read_first_line("/proc/loadavg")
  if not line then return nil end
  local one, five, fifteen = line:match("^(%S+) (%S+) (%S+)")
  return tonumber(one), tonumber(five), tonumber(fifteen)
end
