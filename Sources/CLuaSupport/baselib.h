// CLuaSupport, layer 3 of 6: luaexec's replacements of base library functions (baselib.c) and of
// the string library's pattern functions (patterns.c). Includes stop.h and codec.h below it;
// knows nothing of evaluation or the modules. Layers, lowest first: codec, stop, baselib, eval,
// then persist/http/log side by side, then state (docs/architecture.md).
#ifndef CLUASUPPORT_BASELIB_H
#define CLUASUPPORT_BASELIB_H

#include "stop.h"

// After luaL_openlibs: print captured; load, loadfile, dofile and require's Lua searcher text
// only and compiled in slices the stop reaches; os.exit refused; os.date the stop reaches;
// coroutine.resume, wrap and close, setmetatable, xpcall and debug.setmetatable the stop reaches.
void lx_replace_base(lua_State *L);
// Makes io.stdout write into rt->out and io.stdin an empty file; raises if it cannot.
int lx_open_stdfiles(lua_State *L, lx_runtime *rt);
// Replaces string.find, match, gmatch and gsub with ones that the stop reaches (patterns.c).
void lx_open_patterns(lua_State *L);
// table.insert, remove, move, concat and sort, looking at the stop in their loops (tablelib.c).
void lx_open_tablelib(lua_State *L);

#endif
