// CLuaSupport, layer 5 of 6: the `log` module (log.c). Includes stop.h below it; knows nothing of
// persist.c or http.c (the same layer). Layers, lowest first: codec, stop, baselib, eval, then
// persist/http/log side by side, then state (docs/architecture.md).
#ifndef CLUASUPPORT_LOG_H
#define CLUASUPPORT_LOG_H

#include <lua5.4/lua.h>

// Creates the global `log` table.
void lx_open_log(lua_State *L);

#endif
