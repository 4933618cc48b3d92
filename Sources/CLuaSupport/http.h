// CLuaSupport, layer 5 of 6: the `http` module (http.c). Includes stop.h below it; knows nothing
// of persist.c or log.c (the same layer). Layers, lowest first: codec, stop, baselib, eval, then
// persist/http/log side by side, then state (docs/architecture.md).
#ifndef CLUASUPPORT_HTTP_H
#define CLUASUPPORT_HTTP_H

#include <stddef.h>

#include <lua5.4/lua.h>

// Creates the global `http` table and the registry tables behind it.
void lx_open_http(lua_State *L);
// Pushes the function registered under `name` for `kind` (LX_KIND_ENDPOINT or LX_KIND_ACTION),
// or nil; its type.
int lx_push_registered(lua_State *L, int kind, const char *name, size_t name_len);

#endif
