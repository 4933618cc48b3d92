// CLuaSupport, layer 2 of 6: the runtime record, the capped allocator, the stop hook and its
// stopper thread, the layout check (stop.c). Includes only codec.h below it; knows nothing of
// the base library, evaluation or the modules. Layers, lowest first: codec, stop, baselib, eval,
// then persist/http/log side by side, then state (docs/architecture.md).
#ifndef CLUASUPPORT_STOP_H
#define CLUASUPPORT_STOP_H

#include "codec.h"

#include <pthread.h>
#include <stdatomic.h>

// The runtime: one per state, the allocator's user data (lx_runtime_of). It is here, at the
// layer that hands it to Lua, and holds every layer's per-state fields, each group marked with
// the file that owns it. A layer touches its own fields and those of layers below it; the fields
// after "Above evaluation" belong to persist.c, http.c and log.c alone (state.c sets them up),
// which scripts/check-c-layers.sh checks.
struct lx_runtime {
    lua_State *L;
    size_t used;
    size_t peak;  // the most `used` reached since memory was last handed back (lx_alloc)
    size_t collected;  // `used` after the last full collection that collect_if_grown ran
    size_t memory_limit;
    size_t active_limit;  // memory_limit while the chunk runs, memory_limit + headroom otherwise
    size_t headroom;
    lx_buf out, result, error, traceback;  // out: baselib.c's print; the others: eval.c's
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
    // The thread that keeps hooks allowed while a stop is in effect (stop.c).
    pthread_t stopper;
    int stopper_running;
    // The streamed output (SPEC E13; stop.c, baselib.c's print and io.write): while
    // `output_hook` is set, what waits in `out` goes to it at 4 KiB, or once the oldest byte has
    // waited 100 ms (`pending_since`, CLOCK_MONOTONIC ns; 0: nothing waits), by a count hook on
    // the running thread (lx_hook), and `out` starts empty again. `output_limit` bounds what an
    // evaluation's run prints in all: out.max is what is left of it.
    lx_output_hook output_hook;
    void *output_context;
    size_t output_limit;
    long long pending_since;
    // Post-mortem (SPEC O11): the traceback of where the stop hook first stopped the running
    // evaluation (taken there, while the stack is whole), and whether tracebacks list locals.
    lx_buf stop_trace;
    int stop_traced;
    int traceback_locals;
    // A traceback is being written (C only, no chunk code): the stop hook lets it finish, since
    // the stopper thread turns hooks back on even inside the hook that takes it.
    int tracing;
    // A protected call of the host's own is running (persist.c): the stop hook lets it be. Only
    // C code runs in it, so a chunk cannot use it to escape.
    int host_call;

    // eval.c: the chunk lx_eval runs (NULL otherwise), for the host to hash what registered an
    // endpoint.
    const char *chunk;
    size_t chunk_len;
    // The chunk name lx_eval runs it under, and how many compiled chunks its cache holds.
    const char *chunk_name;
    int cached_chunks;
    // Set by lx_invoke's call when nothing is registered under the name.
    int not_found;
    // The coroutine the chunk (or the registered function) runs on, while it runs (eval.c):
    // `sleep` yields it, and only it, back to the host.
    lua_State *eval_co;
    // Whether the evaluation running now may wait in `sleep` (a request's or a timer's), and
    // the longest wait one `sleep` may ask for, in seconds (limits.wait).
    int can_suspend;
    double max_sleep;
    // Room left among the waiting evaluations (lx_set_wait_room): how many more may wait, and
    // the output this one may hold besides what waits already (below 0: none, not even none).
    long wait_room;
    long long wait_output_room;
    // Set by `sleep` as it yields: the seconds asked for; and, once the evaluation is
    // suspended, the registry reference that keeps its coroutine.
    int sleep_requested;
    double sleep_seconds;
    int suspended_ref;
    // Registry slots of evaluation's own (eval.c's lx_open_eval): the last error's traceback,
    // the coroutine the last evaluation left, the cache of compiled chunks. Each holds `false`
    // when empty, never nil, so that its key stays in the registry and assigning it allocates
    // nothing: every request reads and writes them outside any protected call.
    int traceback_slot;
    int spare_thread_slot;
    int chunks_slot;
    // How lx_invoke finds what to call (eval.h's lx_find_registered_fn; set by state.c).
    int (*find_registered)(lua_State *L, int kind, const char *name, size_t name_len);

    // Above evaluation (persist.c, http.c, log.c):
    // Told of every registration change (http.c).
    lx_registration_hook registration_hook;
    void *registration_context;
    // Numbers registrations, so that a handle from a replaced registration removes nothing.
    lua_Integer registration_serial;
    // Names registered now (endpoints and actions together), and the most allowed
    // (limits.endpoints).
    // Names registered (endpoints and actions), counted apart for requests (0) and for the box's
    // own work (1: init and stored scripts and their timers; `own_work`, set by the host for
    // each run), each against registration_limit: a token that registers names up to the
    // limit leaves the box's scripts room for theirs.
    int registration_counts[2], registration_limit;
    int own_work;
    // registration_counts when the registrations were saved (a stored script's install).
    int saved_registration_counts[2];
    // Writes what log.write gives it (log.c).
    lx_log_hook log_hook;
    void *log_context;
    // Told of every timer set or cancelled (timer.c); how many are set, the most allowed
    // (limits.timers), and the last timer's number.
    lx_timer_hook timer_hook;
    void *timer_context;
    int timer_count, timer_limit;
    lua_Integer timer_serial;
    // While set (a stored script's run), timer.cancel keeps the function it drops aside, for
    // lx_restore_timer to give back when the run fails.
    int timer_holding;

    // persist.c: whether `persisted` or `config` changed since the host last took the changes,
    // the encoded size of `persisted` and its cap, and the buffer the changes are encoded into.
    int persist_dirty, config_dirty;
    // Whether config callbacks wait in the queue (persist.c's C_QUEUE).
    int config_queued;
    size_t persist_bytes, persist_limit;
    // What the config store holds, paths and values as stored (persist.c's cap).
    size_t config_bytes;
    // The encoded size of the keys and paths marked changed since the changes were last taken:
    // removed ones cost nothing against either cap, so this one bounds what the encoding of the
    // changes can reach (persist.c's charge_changed).
    size_t changed_bytes;
    lx_buf changes;
    // The stored script a config callback registered now is owned by, outside that script's own
    // run (its timers' callbacks, its handlers): withdrawn with the script, as the endpoints they
    // register are (persist.c's C_OWNERS). NULL: nobody's.
    lx_buf config_owner;
    int has_config_owner;
};

lx_runtime *lx_runtime_of(lua_State *L);

// registry[LX_WAITING_KEY][thread] = true for the coroutine of each evaluation suspended in
// `sleep` (eval.c): no chunk may resume or close one (baselib.c asks lx_is_waiting of the value at `index`).
#define LX_WAITING_KEY "luaexec.waiting"
int lx_is_waiting(lua_State *L, int index);

// The allocator lua_newstate is given (user data: the runtime), and the malloc settings it
// relies on (once per process, before the first state).
void *lx_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
void lx_set_malloc_policy(void);
// After a call: a full collection when the state grew much since the last one, then freed
// pages handed back to the system when the call's peak was well above what the state holds.
void lx_collect_if_grown(lx_runtime *rt);
void lx_hand_back_memory(lx_runtime *rt);

// Raises the stop hook's error for `reason` (an lx_stop_reason other than LX_STOP_NONE), for C
// code that runs long without returning to Lua and checks rt->stop itself.
int lx_raise_stop(lua_State *L, int reason);
// For a C function's loop that may run long without calling Lua (the hook runs only in Lua):
// raises the stop hook's error when a stop is in effect, except in a host call. One atomic load.
void lx_check_stop(lua_State *L);
// lua_load of `len` bytes at `chunk`, handed to the parser a few hundred bytes at a time with a
// look at the stop (lx_check_stop) before each: compiling runs in C, and Lua's parser is
// quadratic in a long `a or a or ...` (each `or` walks the jump list so far), so 500 KB of
// source compiled for minutes where no hook runs. A stop ends the load with the stop's error.
int lx_load_checked(lua_State *L, const char *chunk, size_t len, const char *chunkname, const char *mode);
// luaL_loadfilex with the same look at the stop between slices of the file (loadfile, dofile and
// require's Lua searcher use it: a chunk may write the file it then compiles). Its answers and
// messages are luaL_loadfilex's: "@name" as the chunk name, a first line starting with '#' and
// a UTF-8 BOM skipped, "cannot open|read NAME: REASON" with LUA_ERRFILE. NULL loads "=stdin",
// empty as the chunk's io.stdin is, whatever the daemon's fd 0 is.
int lx_loadfile_checked(lua_State *L, const char *filename, const char *mode);
// Raises "`what` cannot be called from a finalizer" when Lua runs a finalizer (__gc) now. A
// finalizer runs in whichever evaluation's allocation collected its object, as that evaluation's
// caller: what acts in a caller's name (registering, setting timers) refuses to run there.
void lx_refuse_in_finalizer(lua_State *L, const char *what);
// Sets the stop hook on `L` and allows hooks there again.
void lx_arm(lua_State *L);
// Records the coroutine now running (under hook_lock), arming it when a stop is in effect.
void lx_set_current(lx_runtime *rt, lua_State *co);
// After print or io.write added to `out` on `L`: hands it over when due, else makes sure the
// count hook will (SPEC E13). Only while an output hook is set.
void lx_output_added(lx_runtime *rt, lua_State *L);
// Hands what waits in `out` to the output hook, if one is set.
void lx_flush_output(lx_runtime *rt);
// Pushes onto L the traceback of L1 from `level`, as luaL_traceback writes it, with each frame's
// locals when `locals` (short renderings; no metamethod runs). May raise (memory): protected.
void lx_push_traceback(lua_State *L, lua_State *L1, int level, int locals);
// Waits for the stopper thread to notice that the stop is over (or the state closed).
void lx_end_stopper(lx_runtime *rt);

#endif
