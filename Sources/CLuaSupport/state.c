// CLuaSupport, layer 6 of 6 (the top): the state's life cycle. Creates the runtime and its state,
// opens every layer's part (the base library's changes, the pattern functions, `http`, `log`,
// `persisted` and `config`, `timer`, then the console's copy of the fresh globals), tells
// evaluation where lx_invoke finds registered functions, and frees it all. Includes every layer's
// header; nothing includes this. Layers, lowest first: codec, stop, baselib, eval, then
// persist/http/log/timer/inspect side by side, then state (docs/architecture.md).

#include "baselib.h"
#include "codec.h"
#include "eval.h"
#include "http.h"
#include "inspect.h"
#include "log.h"
#include "persist.h"
#include "stop.h"
#include "timer.h"

#include <lua5.4/lualib.h>

#include <pthread.h>
#include <stdlib.h>

#define LX_RESULT_LIMIT ((size_t)64 << 20)
#define LX_ERROR_LIMIT ((size_t)64 << 10)

// lx_invoke's lookup (eval.h): endpoints and actions are http.c's, the config callback that
// lx_next_config_call chose is persist.c's.
static int find_registered(lua_State *L, int kind, const char *name, size_t name_len) {
    if (kind == LX_KIND_CONFIG_CALL) return lx_push_config_call(L);
    if (kind == LX_KIND_TIMER) return lx_push_timer(L, name, name_len);
    return lx_push_registered(L, kind, name, name_len);
}

static int lx_setup(lua_State *L) {
    lx_runtime *rt = lua_touserdata(L, 1);
    luaL_openlibs(L);
    lx_replace_base(L);
    lx_open_patterns(L);
    lx_open_tablelib(L);
    lx_open_http(L);
    lx_open_log(L);
    lx_open_persist(L);
    lx_open_eval(L, rt);
    lx_open_timer(L);
    int status = lx_open_stdfiles(L, rt);
    // Last: what the globals hold now is the fresh state, which the console's own globals differ from.
    lx_open_inspect(L);
    return status;
}

// MARK: - Life cycle

lx_runtime *lx_runtime_new(size_t memory_limit, size_t output_limit) {
    static pthread_once_t policy = PTHREAD_ONCE_INIT;
    pthread_once(&policy, lx_set_malloc_policy);
    lx_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) return NULL;
    lx_set_memory_limit(rt, memory_limit);
    rt->out.max = output_limit;
    rt->output_limit = output_limit;
    rt->stop_trace.max = LX_ERROR_LIMIT;
    rt->result.max = LX_RESULT_LIMIT;
    rt->result.full = "the results exceed %I bytes";
    rt->error.max = LX_ERROR_LIMIT;
    rt->traceback.max = LX_ERROR_LIMIT;
    rt->changes.max = LX_RESULT_LIMIT;
    rt->config_owner.max = 1024;  // a stored script's name: 128 bytes at most
    rt->changes.full = "persisted: the changes are too large to save";
    rt->persist_limit = (size_t)16 << 20;
    lx_set_find_registered(rt, find_registered);
    pthread_mutex_init(&rt->hook_lock, NULL);
    rt->L = lua_newstate(lx_alloc, rt);
    if (!rt->L) {
        free(rt);
        return NULL;
    }
    lua_State *L = rt->L;
    lua_pushcfunction(L, lx_setup);
    lua_pushlightuserdata(L, rt);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lx_runtime_free(rt);
        return NULL;
    }
    return rt;
}

void lx_runtime_free(lx_runtime *rt) {
    if (!rt) return;
    if (rt->L) {
        // lua_close runs every pending finalizer, where no watchdog reaches: stopped, each ends
        // at its first instruction (C finalizers, files, still run).
        lx_stop(rt, LX_STOP_INTERRUPT);
        lua_close(rt->L);
        lx_end_stopper(rt);
    }
    lx_buf_free(&rt->out);
    lx_buf_free(&rt->result);
    lx_buf_free(&rt->error);
    lx_buf_free(&rt->traceback);
    lx_buf_free(&rt->stop_trace);
    lx_buf_free(&rt->changes);
    lx_buf_free(&rt->config_owner);
    pthread_mutex_destroy(&rt->hook_lock);
    free(rt);
}

lua_State *lx_runtime_state(lx_runtime *rt) { return rt->L; }
