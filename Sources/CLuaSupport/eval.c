// CLuaSupport, layer 4 of 6: evaluation. The C half of LuaRuntime: everything here may raise
// Lua errors (longjmp) or runs inside a protected call; Swift only ever sees status codes and
// byte buffers. The shape follows lua.c: one protected call per chunk with a message handler
// that records a traceback; then the results are encoded in a protected call of their own.
// lx_eval runs a chunk (compiled chunks are kept), lx_invoke a registered function, found
// through the function state.c gives it (lx_set_find_registered). Includes eval.h, stop.h and
// codec.h: knows nothing of HTTP, `persisted` or `config`. Layers, lowest first: codec, stop,
// baselib, eval, then persist/http/log side by side, then state (docs/architecture.md).

#include "eval.h"

#include "codec.h"
#include "stop.h"

#include <string.h>

// The registry's slots of evaluation (rt->traceback_slot, spare_thread_slot, chunks_slot; made
// by lx_open_eval): integer keys read with lua_rawgeti, where string keys cost a lookup of the
// key's string each time (six a request). registry[chunks_slot][chunk name][chunk text] = the
// compiled chunk (lx_eval's cache).

static lx_runtime *runtime_of(lua_State *L) { return lx_runtime_of(L); }

// MARK: - Evaluation

// Pushes the message of the error object at 1 as lua.c's msghandler makes it: a string or
// number as it is, else its __tostring, else what kind of value it is.
static void push_error_message(lua_State *L) {
    int t = lua_type(L, 1);
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_pushvalue(L, 1);
        lua_tostring(L, -1);
    } else if (!(luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)) {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
}

// lua.c's msghandler, except that the traceback goes to the registry so that the message and
// the traceback reach the client as two fields.
static int lx_msghandler(lua_State *L) {
    push_error_message(L);
    luaL_traceback(L, L, NULL, 1);
    lua_rawseti(L, LUA_REGISTRYINDEX, runtime_of(L)->traceback_slot);
    return 1;
}

// Called in protected mode with the chunk's results as its arguments.
static int lx_encode(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    lx_encode_results(L, &rt->result, rt->render_mode);
    return 0;
}

static void take_error(lx_runtime *rt, lua_State *L) {
    size_t n = 0;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "(error object is not a string)";
    if (lua_type(L, -1) != LUA_TSTRING) n = strlen(msg);
    lx_buf_set_truncated(&rt->error, msg, n);
    rt->traceback.len = 0;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, rt->traceback_slot) == LUA_TSTRING) {
        const char *tb = lua_tolstring(L, -1, &n);
        lx_buf_set_truncated(&rt->traceback, tb, n);
    }
    lua_pop(L, 1);
}

static int error_ends_with(lx_runtime *rt, const char *suffix) {
    size_t n = strlen(suffix);
    return rt->error.len >= n && memcmp(rt->error.data + rt->error.len - n, suffix, n) == 0;
}

// Lua reports some allocation failures as ordinary errors: lauxlib's buffers raise the string
// "not enough memory" with lua_error (ours when the cap refused an allocation), and size checks
// refuse requests such as string.rep("x", 2^40) before allocating. All of them are the chunk
// asking for more memory than it may have.
static int is_memory_error(lx_runtime *rt, int status) {
    if (status == LUA_ERRMEM) return 1;
    if (rt->refused && error_ends_with(rt, "not enough memory")) return 1;
    return error_ends_with(rt, "resulting string too large") || error_ends_with(rt, "string length overflow")
        || error_ends_with(rt, "block too big") || error_ends_with(rt, "table overflow");
}

static int kind_of(lx_runtime *rt, int status) {
    switch (atomic_load(&rt->stop)) {
    case LX_STOP_TIMEOUT:
        return LX_ERR_TIMEOUT;
    case LX_STOP_INTERRUPT:
        return LX_ERR_INTERRUPTED;
    default:
        return is_memory_error(rt, status) ? LX_ERR_MEMORY : LX_ERR_RUNTIME;
    }
}

// Resets the buffers for a new evaluation and pushes the message handler; returns the base.
static int begin_call(lx_runtime *rt, int render_mode) {
    lua_State *L = rt->L;
    int base = lua_gettop(L);
    rt->out.len = rt->result.len = rt->error.len = rt->traceback.len = 0;
    rt->out.max = rt->output_limit;
    rt->pending_since = 0;
    rt->stop_trace.len = 0;
    rt->stop_traced = 0;
    rt->render_mode = render_mode;
    rt->refused = 0;
    rt->not_found = 0;
    lua_pushboolean(L, 0);
    lua_rawseti(L, LUA_REGISTRYINDEX, rt->traceback_slot);
    lua_pushcfunction(L, lx_msghandler);
    return base;
}

// MARK: - The evaluation's coroutine
// Every evaluation runs on a coroutine of its own, so that `sleep` can suspend it (lua_yield)
// and the host resume it later (SPEC V10) while other requests use the state meanwhile. The
// coroutine is the one the last evaluation left when it ended (kept in the registry, reset), or
// a new one. A suspended evaluation's coroutine is anchored in the registry by a reference and
// listed in LX_WAITING_KEY, so that no chunk can resume or close it (baselib.c).

// Protected: pushes a new coroutine.
static int lx_new_thread(lua_State *L) {
    lua_newthread(L);
    return 1;
}

// Pushes a coroutine for an evaluation: the one the last evaluation left (allocating nothing,
// so unprotected), else a new one, made in a protected call (it allocates). Returns that call's
// status (LUA_OK when the spare one was taken); on an error, the error is on the stack.
static int take_thread(lx_runtime *rt) {
    lua_State *L = rt->L;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, rt->spare_thread_slot) == LUA_TTHREAD) {
        lua_pushboolean(L, 0);
        lua_rawseti(L, LUA_REGISTRYINDEX, rt->spare_thread_slot);
        return LUA_OK;
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, lx_new_thread);
    return lua_pcall(L, 0, 1, 0);
}

// Protected: anchors the suspended coroutine at 1; pushes its reference.
static int lx_anchor(lua_State *L) {
    lua_settop(L, 1);
    if (lua_getfield(L, LUA_REGISTRYINDEX, LX_WAITING_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, LX_WAITING_KEY);
    }
    lua_pushvalue(L, 1);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_pushinteger(L, luaL_ref(L, LUA_REGISTRYINDEX));
    return 1;
}

// Takes the coroutine `ref` names off the registry and the waiting list (it is on the stack):
// assignments to keys that exist, which allocate nothing.
static void release_anchor(lua_State *L, int ref) {
    int thread = lua_gettop(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, LX_WAITING_KEY) == LUA_TTABLE) {
        lua_pushvalue(L, thread);
        lua_pushnil(L);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
    luaL_unref(L, LUA_REGISTRYINDEX, ref);
}

// Runs the coroutine's pending __close handlers and empties it, with it `current`, so that the
// stop reaches them (as baselib.c's close_thread). When a handler failed (or was stopped), its
// error replaces the message, as it would have in the protected call that closed the variable.
static void close_coroutine(lx_runtime *rt, lua_State *co) {
    lx_set_current(rt, co);
    int status = lua_resetthread(co);
    lx_set_current(rt, NULL);
    if (status != LUA_OK && lua_type(co, -1) == LUA_TSTRING) {
        size_t n = 0;
        const char *message = lua_tolstring(co, -1, &n);
        lx_buf_set_truncated(&rt->error, message, n);
    }
    // lua_resetthread leaves the error of a failed coroutine (or of a failing __close) on it.
    lua_settop(co, 0);
}

// Protected: the message of the error at 1, as lx_msghandler makes it, and the traceback of the
// coroutine at 2 where it failed, ending as lua.c's does.
static int lx_describe_error(lua_State *L) {
    lua_State *co = lua_tothread(L, 2);
    push_error_message(L);
    // C only: the stop hook (armed on this thread too while a stop is in effect) lets it finish.
    lx_runtime *rt = lx_runtime_of(L);
    rt->tracing = 1;
    lx_push_traceback(L, co, 0, rt->traceback_locals);
    rt->tracing = 0;
    lua_pushliteral(L, "\n\t[C]: in ?");
    lua_concat(L, 2);
    lua_rawseti(L, LUA_REGISTRYINDEX, rt->traceback_slot);
    return 1;
}

// The error on top of `co`, described into the error and traceback buffers.
static void describe_error(lx_runtime *rt, lua_State *co) {
    lua_State *L = rt->L;
    if (!lua_checkstack(L, 4)) {
        lx_buf_set_truncated(&rt->error, "not enough memory", 17);
        rt->traceback.len = 0;
        return;
    }
    lua_pushcfunction(L, lx_describe_error);
    lua_xmove(co, L, 1);
    lua_pushthread(co);
    lua_xmove(co, L, 1);
    lua_pcall(L, 2, 1, 0);
    rt->tracing = 0;  // when the traceback raised (memory)
    take_error(rt, L);
    lua_pop(L, 1);
}

// After the evaluation's coroutine (at base + 2) ended: kept for the next one (its slot's key
// is there already: nothing allocated).
static void recycle(lx_runtime *rt, int base) {
    lua_State *L = rt->L;
    lua_settop(L, base + 2);
    lua_rawseti(L, LUA_REGISTRYINDEX, rt->spare_thread_slot);
    rt->refused = 0;
}

// Resumes the evaluation's coroutine at base + 2 with `nargs` values on it, and encodes its
// results (the message handler at base + 1 handles the encoder's errors); restores the stack
// to `base`. LX_SUSPENDED when it waits in `sleep`.
static int run_coroutine(lx_runtime *rt, int base, int nargs) {
    lua_State *L = rt->L;
    lua_State *co = lua_tothread(L, base + 2);
    int result = LX_OK;
    int nres = 0;
    rt->sleep_requested = 0;
    rt->active_limit = rt->memory_limit;
    rt->eval_co = co;
    lx_set_current(rt, co);
    int status = lua_resume(co, L, nargs, &nres);
    lx_set_current(rt, NULL);
    rt->eval_co = NULL;
    rt->active_limit = rt->memory_limit + rt->headroom;
    if (status == LUA_YIELD && rt->sleep_requested) {
        lua_pop(co, nres);
        lua_pushcfunction(L, lx_anchor);
        lua_pushvalue(L, base + 2);
        if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
            rt->suspended_ref = (int)lua_tointeger(L, -1);
            result = LX_SUSPENDED;
        } else {
            take_error(rt, L);
            close_coroutine(rt, co);
            result = LX_ERR_MEMORY;
        }
        goto done;
    }
    if (status == LUA_YIELD) {
        // coroutine.yield() in the chunk's own code: an error, as lua5.4 has it.
        lua_pop(co, nres);
        lua_pushliteral(co, "attempt to yield from outside a coroutine");
        status = LUA_ERRRUN;
    }
    if (status != LUA_OK) {
        describe_error(rt, co);
        // Closed before the kind is read: a __close handler the stop ended makes it a timeout.
        close_coroutine(rt, co);
        result = kind_of(rt, status);
        // Post-mortem (SPEC O11): where the stop hook first reached the chunk, rather than where
        // its error ended up (a pcall in a loop, a coroutine, a finalizer catch it on its way).
        if ((result == LX_ERR_TIMEOUT || result == LX_ERR_INTERRUPTED) && rt->stop_trace.len > 0)
            lx_buf_set_truncated(&rt->traceback, rt->stop_trace.data, rt->stop_trace.len);
        recycle(rt, base);
        goto done;
    }
    if (rt->not_found || !lua_checkstack(L, nres + 2)) {
        lua_pop(co, nres);
        if (!rt->not_found) lx_buf_set_truncated(&rt->error, "too many results", 16);
        result = rt->not_found ? LX_ERR_NOT_FOUND : LX_ERR_RENDER;
        recycle(rt, base);
        goto done;
    }
    lua_xmove(co, L, nres);
    lua_pushcfunction(L, lx_encode);
    lua_insert(L, base + 3);
    status = lua_pcall(L, nres, 0, base + 1);
    if (status != LUA_OK) {
        take_error(rt, L);
        rt->result.len = 0;
        result = kind_of(rt, status);
        if (result == LX_ERR_RUNTIME) result = rt->result.too_many ? LX_ERR_TOO_LARGE : LX_ERR_RENDER;
    }
    recycle(rt, base);

done:
    lua_settop(L, base);
    // No hook the chunk set outlives its run: on the main thread (debug.getregistry()[1], which
    // new coroutines inherit) it would run in the host's own calls, the console's reading of
    // the state and the next request's set-up (its chunk, its arguments) before finish_call
    // clears it; on the coroutine, in the next evaluation that takes it. A suspended chunk keeps
    // its coroutine's: that coroutine is its own until it ends.
    pthread_mutex_lock(&rt->hook_lock);
    if (atomic_load(&rt->stop) == LX_STOP_NONE) {
        lua_sethook(L, NULL, 0, 0);
        if (result != LX_SUSPENDED) lua_sethook(co, NULL, 0, 0);
    }
    pthread_mutex_unlock(&rt->hook_lock);
    // collectgarbage("stop") must not outlive the request; after a memory error, free what
    // the failed chunk left behind now rather than at the next allocation. Only restart a
    // stopped collector: LUA_GCRESTART also zeroes the GC debt, which forced a collection step,
    // a pass over much of the heap, on every request.
    if (!lua_gc(L, LUA_GCISRUNNING)) lua_gc(L, LUA_GCRESTART);
    if (result == LX_ERR_TIMEOUT || result == LX_ERR_INTERRUPTED) {
        // Finalizers the stopped chunk left pending run now, while it is still being stopped,
        // so each ends at once instead of looping in a later request (a full collection runs
        // every pending finalizer).
        lua_gc(L, LUA_GCCOLLECT);
        rt->collected = rt->used;
    } else if (result == LX_ERR_MEMORY) {
        lua_gc(L, LUA_GCCOLLECT);
        rt->collected = rt->used;
    } else {
        lx_collect_if_grown(rt);
    }
    lx_hand_back_memory(rt);
    return result;
}

// Runs the function and its `nargs` arguments at the top of the stack (the message handler at
// base + 1 below them) on the evaluation's coroutine; restores the stack to `base`.
static int finish_call(lx_runtime *rt, int base, int nargs) {
    lua_State *L = rt->L;
    // Room for the coroutine and its slot's `false` (a chunk's `...` may have taken what the
    // stack had: pushed with LUA_MULTRET).
    if (!lua_checkstack(L, 2)) {
        lx_buf_set_truncated(&rt->error, "not enough memory", 17);
        rt->traceback.len = 0;
        lua_settop(L, base);
        return LX_ERR_MEMORY;
    }
    int status = take_thread(rt);
    if (status != LUA_OK) {
        // Out of memory, or stopped already (the stop hook fires at calls too).
        take_error(rt, L);
        lua_settop(L, base);
        int result = kind_of(rt, status);
        return result == LX_ERR_RUNTIME ? LX_ERR_MEMORY : result;
    }
    lua_insert(L, base + 2);
    lua_State *co = lua_tothread(L, base + 2);
    // A hook the last chunk set on its coroutine (debug.sethook(coroutine.running(), f, "l"))
    // or on the main thread, which new coroutines inherit, would run inside this evaluation: a
    // chunk spying on the next request's locals, or slowing every later one. Each evaluation
    // starts without one; the stop's hook is armed again if a stop is in effect (lx_set_current).
    pthread_mutex_lock(&rt->hook_lock);
    if (atomic_load(&rt->stop) == LX_STOP_NONE) {
        lua_sethook(co, NULL, 0, 0);
        lua_sethook(L, NULL, 0, 0);
    }
    pthread_mutex_unlock(&rt->hook_lock);
    // lua_xmove does not grow the receiving stack: a chunk's `...` may be long (SPEC E11).
    if (!lua_checkstack(co, nargs + 1)) {
        lx_buf_set_truncated(&rt->error, "not enough memory", 17);
        rt->traceback.len = 0;
        lua_settop(L, base);
        return LX_ERR_MEMORY;
    }
    lua_xmove(L, co, nargs + 1);
    return run_coroutine(rt, base, nargs);
}

int lx_resume(lx_runtime *rt, int ref, int render_mode, size_t output_used) {
    lua_State *L = rt->L;
    int base = begin_call(rt, render_mode);
    // The output limit is the whole evaluation's, every run between sleeps together: what it
    // printed before (held by the host, or streamed) counts against what it may print now.
    rt->out.max = output_used >= rt->output_limit ? 0 : rt->output_limit - output_used;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, ref) != LUA_TTHREAD) {
        lua_settop(L, base);
        lx_buf_set_truncated(&rt->error, "luaexec: no such waiting evaluation", 35);
        return LX_ERR_RUNTIME;
    }
    release_anchor(L, ref);
    return run_coroutine(rt, base, 0);
}

size_t lx_output_used(lx_runtime *rt) {
    return rt->output_limit - rt->out.max + rt->out.len;
}

void lx_abandon(lx_runtime *rt, int ref) {
    lua_State *L = rt->L;
    int base = lua_gettop(L);
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, ref) == LUA_TTHREAD) {
        lua_State *co = lua_tothread(L, -1);
        release_anchor(L, ref);
        close_coroutine(rt, co);
    }
    lua_settop(L, base);
}

// Protected: the traceback of the suspended coroutine at 1, ending as lua.c's does.
static int lx_describe_waiting(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    lua_State *co = lua_tothread(L, 1);
    lx_push_traceback(L, co, 0, rt->traceback_locals);
    lua_pushliteral(L, "\n\t[C]: in ?");
    lua_concat(L, 2);
    size_t n = 0;
    const char *trace = lua_tolstring(L, -1, &n);
    lx_buf_set_truncated(&rt->traceback, trace, n);
    return 0;
}

int lx_waiting_traceback(lx_runtime *rt, int ref) {
    lua_State *L = rt->L;
    int base = lua_gettop(L);
    rt->traceback.len = 0;
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, ref) != LUA_TTHREAD) {
        lua_settop(L, base);
        return LX_ERR_RUNTIME;
    }
    lua_pushcfunction(L, lx_describe_waiting);
    lua_insert(L, -2);
    // Only C runs (the values are rendered by their raw types): the stop may be in effect.
    rt->tracing = 1;
    int status = lua_pcall(L, 1, 0, 0);
    rt->tracing = 0;
    lua_settop(L, base);
    return status == LUA_OK ? LX_OK : LX_ERR_MEMORY;
}

void lx_set_suspendable(lx_runtime *rt, int suspendable, double max_seconds) {
    rt->can_suspend = suspendable;
    rt->max_sleep = max_seconds;
}

void lx_set_wait_room(lx_runtime *rt, long waits, long long output_bytes) {
    rt->wait_room = waits;
    rt->wait_output_room = output_bytes;
}

void lx_suspension(const lx_runtime *rt, int *ref, double *seconds) {
    *ref = rt->suspended_ref;
    *seconds = rt->sleep_seconds;
}

// sleep(seconds): suspends the evaluation (SPEC V10); the host resumes it when the time is up,
// and serves other requests meanwhile.
static int lx_sleep(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    lua_Number seconds = luaL_checknumber(L, 1);
    if (seconds != seconds) return luaL_argerror(L, 1, "seconds is NaN (not a number), not 0 or more");
    if (!(seconds >= 0)) return luaL_argerror(L, 1, "seconds must be 0 or more");
    if (seconds > rt->max_sleep)
        return luaL_error(L, "sleep(%f): longer than a request may wait (limits.wait: %f seconds)", seconds,
            (lua_Number)rt->max_sleep);
    if (!rt->can_suspend)
        return luaL_error(L, "sleep cannot wait here: init scripts, stored scripts as they are installed and config "
                             "callbacks run to the end (timer.after runs a function later)");
    if (L != rt->eval_co)
        return luaL_error(L, "sleep cannot wait inside a coroutine the chunk made: call it from the chunk itself");
    if (!lua_isyieldable(L))
        return luaL_error(L, "sleep cannot wait inside a function called from C (a metamethod, a sort comparator, "
                             "a gsub replacement, a finalizer)");
    // Each waiting evaluation keeps a request (and nginx's two connections for it) open and
    // its output so far in memory: both are bounded for all of them together (docs/limits.md).
    if (rt->wait_room <= 0)
        return luaL_error(L, "sleep cannot wait now: as many requests as limits.wait_capacity allows wait in sleep "
                             "already (try again later, or wait in fewer)");
    size_t held = lx_output_used(rt);
    if (rt->wait_output_room < 0 || held > (size_t)rt->wait_output_room)
        return luaL_error(L, "sleep cannot wait now: with this chunk's output so far (%I bytes) and its request, the "
                             "requests waiting in sleep would hold more than they may together (64 MiB of output and "
                             "request bodies): print less before sleep, or try again later",
            (lua_Integer)held);
    rt->sleep_requested = 1;
    rt->sleep_seconds = seconds;
    return lua_yield(L, 0);
}

void lx_open_eval(lua_State *L, lx_runtime *rt) {
    lua_pushcfunction(L, lx_sleep);
    lua_setglobal(L, "sleep");
    lua_pushboolean(L, 0);
    rt->traceback_slot = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 0);
    rt->spare_thread_slot = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pushboolean(L, 0);
    rt->chunks_slot = luaL_ref(L, LUA_REGISTRYINDEX);
}

// Compiled chunks are kept, by chunk name and text: administrators' tools send the same chunks
// again and again, and compiling one (lexer, parser, code generator, a dozen allocations) was
// the larger part of evaluating `return 1+1`. A call of a kept chunk is a call of a new chunk:
// its locals are its own, and its one upvalue, _ENV, is the globals table. A chunk that
// changed its _ENV (`_ENV = t`, debug.setupvalue) would pass the change on, so it is compiled
// again instead. The cache is small and bounded (at most LX_CHUNK_CACHE_ENTRIES chunks of at
// most LX_CHUNK_CACHE_BYTES each, counted in the state's memory), emptied when full, and
// gone with the state at a reset.
#define LX_CHUNK_CACHE_ENTRIES 64
#define LX_CHUNK_CACHE_BYTES 1024

// The table of kept chunks of rt->chunk_name, created if `create`; pushes it, or nil.
static int push_chunk_table(lua_State *L, lx_runtime *rt, int create) {
    if (lua_rawgeti(L, LUA_REGISTRYINDEX, rt->chunks_slot) != LUA_TTABLE) {
        lua_pop(L, 1);
        if (!create) {
            lua_pushnil(L);
            return 0;
        }
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_rawseti(L, LUA_REGISTRYINDEX, rt->chunks_slot);
    }
    if (lua_getfield(L, -1, rt->chunk_name) != LUA_TTABLE) {
        lua_pop(L, 1);
        if (!create) {
            lua_pushnil(L);
            lua_replace(L, -2);
            return 0;
        }
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, -3, rt->chunk_name);
    }
    lua_replace(L, -2);
    return 1;
}

// Protected (it allocates): pushes the kept chunk for rt->chunk under rt->chunk_name, or nil.
static int lx_cached_chunk(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    if (!push_chunk_table(L, rt, 0)) return 1;
    lua_pushlstring(L, rt->chunk, rt->chunk_len);
    if (lua_rawget(L, -2) != LUA_TFUNCTION) return 1;
    // Its _ENV must still be the globals table.
    const char *upvalue = lua_getupvalue(L, -1, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int same = upvalue != NULL && lua_rawequal(L, -1, -2);
    lua_pop(L, upvalue != NULL ? 2 : 1);
    if (same) return 1;
    lua_pop(L, 1);
    lua_pushlstring(L, rt->chunk, rt->chunk_len);
    lua_pushnil(L);
    lua_rawset(L, -3);
    rt->cached_chunks--;
    lua_pushnil(L);
    return 1;
}

// Protected: keeps the compiled chunk given as its argument.
static int lx_keep_chunk(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    if (rt->cached_chunks >= LX_CHUNK_CACHE_ENTRIES) {
        lua_pushboolean(L, 0);
        lua_rawseti(L, LUA_REGISTRYINDEX, rt->chunks_slot);
        rt->cached_chunks = 0;
    }
    push_chunk_table(L, rt, 1);
    lua_pushlstring(L, rt->chunk, rt->chunk_len);
    lua_pushvalue(L, 1);
    lua_rawset(L, -3);
    rt->cached_chunks++;
    return 0;
}

// Pushes the chunk to run, kept or compiled now (lx_eval's cache, above); the load's status.
static int push_chunk(lx_runtime *rt, int base) {
    lua_State *L = rt->L;
    int cacheable = rt->chunk_len <= LX_CHUNK_CACHE_BYTES;
    // A failure here (no memory for the key) only means compiling the chunk as if never seen.
    if (cacheable) {
        lua_pushcfunction(L, lx_cached_chunk);
        if (lua_pcall(L, 0, 1, 0) != LUA_OK || lua_type(L, -1) != LUA_TFUNCTION) lua_settop(L, base + 1);
        rt->refused = 0;
        if (lua_gettop(L) > base + 1) return LUA_OK;
    }
    int status = lx_load_checked(L, rt->chunk, rt->chunk_len, rt->chunk_name, "t");
    if (status == LUA_OK && cacheable) {
        lua_pushcfunction(L, lx_keep_chunk);
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
        rt->refused = 0;
    }
    return status;
}

// Runs in protected mode (decoding allocates): pushes the arguments encoded in the decoder
// given as its one argument, and returns them all.
static int push_arguments(lua_State *L) {
    lx_decoder *in = lua_touserdata(L, 1);
    lua_settop(L, 0);
    uint32_t nargs = lx_take_u32(L, in);
    for (uint32_t i = 0; i < nargs; i++) lx_push_decoded(L, in, 0);
    return lua_gettop(L);
}

int lx_eval(lx_runtime *rt, const char *chunk, size_t len, const char *chunkname, int render_mode) {
    return lx_eval_args(rt, chunk, len, chunkname, NULL, 0, render_mode);
}

int lx_eval_args(lx_runtime *rt, const char *chunk, size_t len, const char *chunkname, const char *args,
    size_t args_len, int render_mode) {
    lua_State *L = rt->L;
    int base = begin_call(rt, render_mode);
    rt->chunk = chunk;
    rt->chunk_len = len;
    rt->chunk_name = chunkname;
    int result;
    int status = push_chunk(rt, base);
    int nargs = 0;
    if (status == LUA_OK && args != NULL) {
        // The chunk's `...` (SPEC E11), pushed above it; only memory can fail here, since the
        // host encoded what it validated.
        lx_decoder in = {.args = (const unsigned char *)args, .end = (const unsigned char *)args + args_len};
        lua_pushcfunction(L, push_arguments);
        lua_pushlightuserdata(L, &in);
        status = lua_pcall(L, 1, LUA_MULTRET, 0);
        nargs = lua_gettop(L) - base - 2;
        if (status != LUA_OK) {
            take_error(rt, L);
            rt->traceback.len = 0;
            lua_settop(L, base);
            result = LX_ERR_MEMORY;
            goto done;
        }
    }
    if (status == LUA_OK) {
        result = finish_call(rt, base, nargs);
    } else {
        take_error(rt, L);
        rt->traceback.len = 0;
        lua_settop(L, base);
        // Stopped while it compiled (lx_load_checked): a timeout or an interrupt, not a syntax error.
        if (atomic_load(&rt->stop) != LX_STOP_NONE) result = kind_of(rt, status);
        else result = is_memory_error(rt, status) ? LX_ERR_MEMORY : LX_ERR_SYNTAX;
    }
done:
    rt->chunk = NULL;
    rt->chunk_len = 0;
    rt->chunk_name = NULL;
    return result;
}

const char *lx_current_chunk(const lx_runtime *rt, size_t *len) {
    *len = rt->chunk_len;
    return rt->chunk;
}

// MARK: - Calling registered functions

typedef struct {
    int kind;
    const char *name;
    size_t name_len;
    lx_decoder in;
} invocation;

// The registered function's results, after it returned (or after a `sleep` in it, resumed).
static int invoked(lua_State *L, int status, lua_KContext context) {
    (void)status;
    (void)context;
    return lua_gettop(L);
}

// Runs in protected mode: finds the function, pushes its arguments, calls it, returns its results.
static int invoke_registered(lua_State *L) {
    invocation *v = lua_touserdata(L, 1);
    lx_runtime *rt = lx_runtime_of(L);
    lua_settop(L, 0);
    if (!rt->find_registered || rt->find_registered(L, v->kind, v->name, v->name_len) != LUA_TFUNCTION) {
        rt->not_found = 1;
        return 0;
    }
    uint32_t nargs = lx_take_u32(L, &v->in);
    for (uint32_t i = 0; i < nargs; i++) lx_push_decoded(L, &v->in, 0);
    // With a continuation, so that the function may wait in `sleep` (the arguments are on
    // the stack by then: `v` is not used again).
    lua_callk(L, (int)nargs, LUA_MULTRET, 0, invoked);
    return invoked(L, LUA_OK, 0);
}

int lx_invoke(lx_runtime *rt, int kind, const char *name, size_t name_len, const char *args, size_t args_len,
    int render_mode) {
    lua_State *L = rt->L;
    invocation v = {.kind = kind, .name = name, .name_len = name_len,
        .in = {.args = (const unsigned char *)args, .end = (const unsigned char *)args + args_len}};
    int base = begin_call(rt, render_mode);
    lua_pushcfunction(L, invoke_registered);
    lua_pushlightuserdata(L, &v);
    return finish_call(rt, base, 1);
}

void lx_set_find_registered(lx_runtime *rt, lx_find_registered_fn find) { rt->find_registered = find; }

// MARK: - The host's own protected calls

// A protected call of the host's own (saving, loading, undoing): it must not be cut short by the
// stop of the chunk it follows (a save that waited for a lock may have passed the time limit),
// so the stop hook lets it run (lx_hook reads host_call). Only C runs in it, and the collector is
// stopped meanwhile, so that no finalizer a chunk left behind runs where the stop cannot reach.
int lx_host_pcall(lx_runtime *rt, int nargs) {
    lua_State *L = rt->L;
    int collecting = lua_gc(L, LUA_GCISRUNNING) == 1;
    if (collecting) lua_gc(L, LUA_GCSTOP);
    rt->host_call = 1;
    int status = lua_pcall(L, nargs, 0, 0);
    rt->host_call = 0;
    if (collecting) lua_gc(L, LUA_GCRESTART);
    return status;
}

int lx_host_status(lx_runtime *rt, int status) {
    if (status == LUA_OK) return LX_OK;
    size_t n = 0;
    const char *message = lua_tolstring(rt->L, -1, &n);
    if (!message) message = "(error object is not a string)", n = strlen(message);
    lx_buf_set_truncated(&rt->error, message, n);
    lua_pop(rt->L, 1);
    return status == LUA_ERRMEM ? LX_ERR_MEMORY : LX_ERR_RUNTIME;
}

// MARK: - The buffers the host reads

#define LX_BUF_KEEP ((size_t)1 << 20)

void lx_trim_buffers(lx_runtime *rt) {
    lx_buf *buffers[] = {&rt->out, &rt->result, &rt->error, &rt->traceback};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) {
        if (buffers[i]->cap > LX_BUF_KEEP) lx_buf_free(buffers[i]);
    }
}

const char *lx_result(const lx_runtime *rt, size_t *len) {
    *len = rt->result.len;
    return rt->result.data;
}
const char *lx_error(const lx_runtime *rt, size_t *len) {
    *len = rt->error.len;
    return rt->error.data;
}
const char *lx_traceback(const lx_runtime *rt, size_t *len) {
    *len = rt->traceback.len;
    return rt->traceback.data;
}
const char *lx_output(const lx_runtime *rt, size_t *len) {
    *len = rt->out.len;
    return rt->out.data;
}
