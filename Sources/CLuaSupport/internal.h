// What luasupport.c and http.c share: the runtime's layout and the helpers both use. Not part
// of the module's interface (include/CLuaSupport.h is).
#ifndef CLUASUPPORT_INTERNAL_H
#define CLUASUPPORT_INTERNAL_H

#include "CLuaSupport.h"

#include <pthread.h>
#include <stdatomic.h>

#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>
#include <lua5.4/lualib.h>

#define LX_TRACEBACK_KEY "luaexec.traceback"
// registry[LX_CHUNKS_KEY][chunk name][chunk text] = the compiled chunk (lx_eval's cache).
#define LX_CHUNKS_KEY "luaexec.chunks"
#define LX_RESULT_LIMIT ((size_t)64 << 20)
#define LX_ERROR_LIMIT ((size_t)64 << 10)
#define LX_MAX_DEPTH 32
// Compiling a chunk and encoding its results may use this much beyond the cap, so that an
// administrator can still run `big = nil` when live data fills the state to its limit.
#define LX_HEADROOM_MIN ((size_t)1 << 20)

typedef struct {
    char *data;
    size_t len, cap, max;
    // The error raised when an encoding would pass `max` (a format that may use it as %I).
    const char *full;
} lx_buf;

struct lx_runtime {
    lua_State *L;
    size_t used;
    size_t peak;  // the most `used` reached since memory was last handed back (lx_alloc)
    size_t collected;  // `used` after the last full collection that collect_if_grown ran
    size_t memory_limit;
    size_t active_limit;  // memory_limit while the chunk runs, memory_limit + headroom otherwise
    size_t headroom;
    lx_buf out, result, error, traceback;
    int render_mode;
    int refused;  // the cap refused an allocation during this evaluation
    _Atomic int stop;
    // Guards `current` against lx_stop from the watchdog thread: a coroutine may be collected
    // as soon as it stops running, so its pointer is only used while this lock is held.
    pthread_mutex_t hook_lock;
    lua_State *current;
    // The block lua_newstate allocated first (it holds the main thread), and whether lua_close
    // has freed it, under hook_lock: lx_stop may run on another thread while the state closes.
    void *state_block;
    int state_freed;
    // The thread that keeps hooks allowed while a stop is in effect (luasupport.c).
    pthread_t stopper;
    int stopper_running;
    // A protected call of the host's own is running (persist.c): the stop hook lets it be. Only
    // C code runs in it, so a chunk cannot use it to escape.
    int host_call;

    // The chunk lx_eval runs (NULL otherwise), for the host to hash what registered an endpoint.
    const char *chunk;
    size_t chunk_len;
    // The chunk name lx_eval runs it under, and how many compiled chunks its cache holds.
    const char *chunk_name;
    int cached_chunks;
    // Set by lx_invoke's call when nothing is registered under the name.
    int not_found;
    // Told of every registration change (http.c).
    lx_registration_hook registration_hook;
    void *registration_context;
    // Numbers registrations, so that a handle from a replaced registration removes nothing.
    lua_Integer registration_serial;
    // Writes what log.write gives it (log.c).
    lx_log_hook log_hook;
    void *log_context;

    // persist.c: whether `persisted` or `config` changed since the host last took the changes,
    // the encoded size of `persisted` and its cap, and the buffer the changes are encoded into.
    int persist_dirty, config_dirty;
    // Whether config callbacks wait in the queue (persist.c's C_QUEUE).
    int config_queued;
    size_t persist_bytes, persist_limit;
    // What the config store holds, paths and values as stored (persist.c's cap).
    size_t config_bytes;
    lx_buf changes;
};

lx_runtime *lx_runtime_of(lua_State *L);
int lx_buf_add(lx_buf *b, const void *p, size_t n);
void lx_buf_set_truncated(lx_buf *b, const char *p, size_t n);
// The value encoding of lx_encode (luasupport.c), into any buffer; they raise b->full.
void lx_put(lua_State *L, lx_buf *b, const void *p, size_t n);
void lx_put_u32(lua_State *L, lx_buf *b, size_t v);
// Encodes a nil, boolean, number or string at idx and returns 1; anything else: 0, nothing put.
int lx_put_scalar(lua_State *L, lx_buf *b, int idx);

// Creates the global `http` table and the registry tables behind it (http.c).
void lx_open_http(lua_State *L);
// Pushes the function registered under `name` for `kind`, or nil (http.c).
int lx_push_registered(lua_State *L, int kind, const char *name, size_t name_len);
// Raises the stop hook's error for `reason` (an lx_stop_reason other than LX_STOP_NONE), for C
// code that runs long without returning to Lua and checks rt->stop itself.
int lx_raise_stop(lua_State *L, int reason);
// Replaces string.find, match, gmatch and gsub with ones that the stop reaches (patterns.c).
void lx_open_patterns(lua_State *L);
// Creates the global `log` table (log.c).
void lx_open_log(lua_State *L);
// Creates `persisted`, `shared` and `config` (persist.c).
void lx_open_persist(lua_State *L);
// Pushes the function of the config callback lx_next_config_call chose, or nil (persist.c).
int lx_push_config_call(lua_State *L);

#endif
