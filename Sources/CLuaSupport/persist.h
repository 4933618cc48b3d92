// CLuaSupport, layer 5 of 6: `persisted`, `shared` and `config` (persist.c). Includes stop.h and
// codec.h below it; knows nothing of http.c or log.c (the same layer). Layers, lowest first:
// codec, stop, baselib, eval, then persist/http/log side by side, then state
// (docs/architecture.md).
#ifndef CLUASUPPORT_PERSIST_H
#define CLUASUPPORT_PERSIST_H

#include <lua5.4/lua.h>

// Creates `persisted`, `shared` and `config`.
void lx_open_persist(lua_State *L);
// Pushes the function of the config callback lx_next_config_call chose, or nil; its type.
int lx_push_config_call(lua_State *L);

#endif
