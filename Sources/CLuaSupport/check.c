// CLuaSupport, beside the layers: compiling without running (SPEC E12). It shares nothing with
// the resident state, so a check never waits for the chunk that state is running: each check
// compiles in a throwaway lua_State of its own, under a memory cap and a time limit of its own,
// on the caller's thread. Includes only CLuaSupport.h and Lua's headers.
//
// The time limit, because Lua's parser is quadratic in some constructs: each `or` of a long
// `a or a or ...` walks the jump list so far, and 500 KB of them compiled for 14 s. The source is
// handed to the parser a few hundred bytes at a time, and the clock read before each piece (as
// stop.c's lx_load_checked looks at the stop in the resident state, with the same slices.h).

#include "CLuaSupport.h"
#include "slices.h"

#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

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

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

typedef struct {
    lx_slices slices;
    long long deadline;
    int expired;
} check_source;

static const char *check_reader(lua_State *L, void *ud, size_t *size) {
    check_source *source = ud;
    if (source->slices.left > 0 && now_ns() > source->deadline) {
        source->expired = 1;
        luaL_error(L, "the chunk took longer than the time limit to compile");
    }
    return lx_slices_next(&source->slices, size);
}

int lx_check_syntax(const char *chunk, size_t len, const char *chunkname, size_t memory_limit, long long time_limit_ns,
    char **message, size_t *message_len) {
    *message = NULL;
    *message_len = 0;
    check_budget budget = {.used = 0, .limit = memory_limit, .refused = 0};
    lua_State *L = lua_newstate(check_alloc, &budget);
    if (!L) return LX_ERR_MEMORY;
    check_source source = {.slices = {.next = chunk, .left = len}, .deadline = now_ns() + time_limit_ns, .expired = 0};
    int status = lua_load(L, check_reader, &source, chunkname, "t");
    int result = LX_OK;
    if (status != LUA_OK) {
        if (source.expired) result = LX_ERR_TIMEOUT;
        else if (status == LUA_ERRMEM || budget.refused) result = LX_ERR_MEMORY;
        else result = LX_ERR_SYNTAX;
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
