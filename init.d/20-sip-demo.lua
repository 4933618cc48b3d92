-- A stand-in for a desk phone's SIP stack, so that the seed's example
--   return sip.calls.get_all()[1]:getState()
-- answers `active` on a box that has no phone. It simulates one call and touches nothing.
-- An appliance with a real SIP stack replaces this file with its own binding.

local Call = {}
Call.__index = Call
Call.__name = "sip.call"

function Call:getState() return self.state end
function Call:getRemote() return self.remote end

sip = sip or {}
sip.calls = sip.calls or {}

local demo_calls = {
  setmetatable({ state = "active", remote = "sip:demo@localhost" }, Call),
}

function sip.calls.get_all()
  local copy = {}
  for i, call in ipairs(demo_calls) do copy[i] = call end
  return copy
end
