// CLuaSupport, layer 5 of 6: completion and inspection of the live state (inspect.c, SPEC O10).
// Includes eval.h below it (the host's protected call); knows nothing of persist.c, http.c, log.c
// or timer.c (the same layer). Layers, lowest first: codec, stop, baselib, eval, then
// persist/http/log/timer/inspect side by side, then state (docs/architecture.md).
#ifndef CLUASUPPORT_INSPECT_H
#define CLUASUPPORT_INSPECT_H

#include <lua5.4/lua.h>

// Keeps what the globals hold now as the fresh state's (registry[LX_FRESH_GLOBALS_KEY]), so that
// lx_own_globals can tell the state's own globals from the standard ones. state.c calls it once
// every library is open, before any script runs.
void lx_open_inspect(lua_State *L);

#endif
