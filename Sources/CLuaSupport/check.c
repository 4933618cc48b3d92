// CLuaSupport, beside the layers: compiling without running (SPEC E12). It shares nothing with
// the resident state, so a check never waits for the chunk that state is running: each check
// compiles in a throwaway lua_State of its own, under a memory cap of its own, on the caller's
// thread. Includes only CLuaSupport.h and Lua's headers.

#include "CLuaSupport.h"

#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>

#include <stdlib.h>
#include <string.h>

typedef struct {
    size_t used;
    size_t limit;
    int refused;
} check_budget;

// lua_Alloc with a cap: a chunk that would need more than `limit` to compile is refused as out
// of memory instead of growing the daemon.
static void *check_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    check_budget *budget = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        budget->used -= old;
        return NULL;
    }
    if (nsize > old && budget->used - old + nsize > budget->limit) {
        budget->refused = 1;
        return NULL;
    }
    void *block = realloc(ptr, nsize);
    if (block) budget->used = budget->used - old + nsize;
    return block;
}

int lx_check_syntax(const char *chunk, size_t len, const char *chunkname, size_t memory_limit, char **message,
    size_t *message_len) {
    *message = NULL;
    *message_len = 0;
    check_budget budget = {.used = 0, .limit = memory_limit, .refused = 0};
    lua_State *L = lua_newstate(check_alloc, &budget);
    if (!L) return LX_ERR_MEMORY;
    int status = luaL_loadbufferx(L, chunk, len, chunkname, "t");
    int result = LX_OK;
    if (status != LUA_OK) {
        result = status == LUA_ERRMEM || budget.refused ? LX_ERR_MEMORY : LX_ERR_SYNTAX;
        size_t n = 0;
        const char *text = lua_tolstring(L, -1, &n);
        if (text && (*message = malloc(n ? n : 1))) {
            memcpy(*message, text, n);
            *message_len = n;
        }
    }
    lua_close(L);
    return result;
}
