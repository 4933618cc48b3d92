// The `log` module: a script's line in luaexecd's log.
//
//   log.write(tag, text)   one line: `lua tag=<tag> text=<text>`, at the level the tag names
//                          (debug, info, notice, warning, error, critical), else at info;
//                          true, or false when the line was dropped (the host's rate limit)
//
// The host writes the line (LuaRuntime's LuaVM+Log.swift, through luaexecd's one line writer,
// which escapes what could forge another line). Here only the arguments are checked, since a
// bad one raises a Lua error.
//
// CLuaSupport, layer 5 of 6, beside persist.c and http.c. Includes log.h and stop.h. Layers,
// lowest first: codec, stop, baselib, eval, then persist/http/log side by side, then state
// (docs/architecture.md).

#include "log.h"

#include "stop.h"

static int log_write(lua_State *L) {
    size_t tag_len, text_len;
    const char *tag = luaL_checklstring(L, 1, &tag_len);
    const char *text = luaL_tolstring(L, 2, &text_len);
    lx_runtime *rt = lx_runtime_of(L);
    int written = rt->log_hook ? rt->log_hook(rt->log_context, tag, tag_len, text, text_len) : 1;
    lua_pushboolean(L, written);
    return 1;
}

void lx_open_log(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"write", log_write},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    lua_setglobal(L, "log");
}

void lx_set_log_hook(lx_runtime *rt, lx_log_hook hook, void *context) {
    rt->log_hook = hook;
    rt->log_context = context;
}
