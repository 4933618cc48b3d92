// The C half of LuaRuntime. Everything here may raise Lua errors (longjmp) or runs inside a
// protected call; Swift only ever sees status codes and byte buffers. The shape follows lua.c:
// one protected call per chunk with a message handler that records a traceback.

#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

// MARK: - Buffers (malloc'd, outside the state's allocator, reused across evaluations)

static int buf_reserve(lx_buf *b, size_t extra) {
    if (extra > b->max || b->len > b->max - extra) return 0;
    size_t need = b->len + extra;
    if (need <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap = cap > b->max / 2 ? b->max : cap * 2;
    char *p = realloc(b->data, cap);
    if (!p) return 0;
    b->data = p;
    b->cap = cap;
    return 1;
}

static int buf_add(lx_buf *b, const void *p, size_t n) {
    if (!buf_reserve(b, n)) return 0;
    if (n) memcpy(b->data + b->len, p, n);
    b->len += n;
    return 1;
}

// Copies as much as fits; used for error messages, which are truncated rather than lost.
static void buf_set_truncated(lx_buf *b, const char *p, size_t n) {
    b->len = 0;
    if (n > b->max) n = b->max;
    buf_add(b, p, n);
}

int lx_buf_add(lx_buf *b, const void *p, size_t n) { return buf_add(b, p, n); }
void lx_buf_set_truncated(lx_buf *b, const char *p, size_t n) { buf_set_truncated(b, p, n); }

static void buf_free(lx_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

// MARK: - Allocator with a cap

static void *lx_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    lx_runtime *rt = ud;
    if (ptr == NULL) osize = 0;  // osize then encodes the object's type, not a size
    if (nsize == 0) {
        if (ptr != NULL && ptr == rt->state_block) {
            // lua_close frees the main thread last: from now on lx_stop must not touch it.
            pthread_mutex_lock(&rt->hook_lock);
            rt->state_freed = 1;
            pthread_mutex_unlock(&rt->hook_lock);
        }
        free(ptr);
        rt->used -= osize;
        return NULL;
    }
    if (nsize > osize && rt->used + (nsize - osize) > rt->active_limit) {
        rt->refused = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) return NULL;
    if (rt->state_block == NULL) rt->state_block = p;  // lua_newstate's first block holds the main thread
    rt->used = rt->used - osize + nsize;
    if (rt->used > rt->peak) rt->peak = rt->used;
    return p;
}

// The cap bounds what the state holds, not what the process keeps: glibc keeps freed memory in
// its heaps (and in one arena per thread that ever allocated), and raises its mmap threshold
// after large blocks are freed, so that the next ones come from the heap and stay. A script
// that builds a 60 MiB table and is refused left luaexecd hundreds of MiB larger for good.
// So: one arena for the whole process (the state is used by one thread at a time anyway), a
// fixed mmap threshold (large blocks, a big table's array or a long string, are mapped and
// unmapped with the block), and after a call whose peak was well above what the state holds
// now, malloc_trim hands the freed pages back (it releases free pages inside the heap too).
// Measured in LimitsTests' memory-bomb test and BENCHMARKS.md.
#define LX_TRIM_SLACK ((size_t)16 << 20)

static void set_malloc_policy(void) {
    mallopt(M_ARENA_MAX, 1);
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1 << 20);
}

// Lua's collector runs only when something allocates. After a chunk that built a 100 MiB
// string or table and let it go, the garbage stayed in the state, and the memory in the process,
// for as long as later requests allocated little: for good on a quiet appliance. So after a
// call that left the state holding more than twice what it held after its last full collection
// (and LX_COLLECT_GROWTH more), a full collection runs at once. As with Lua's own pause (200%),
// each collection follows a doubling, so its work stays proportional to what was allocated.
// Finalizers the chunk left behind run then, under its time limit, not in a later request's.
#define LX_COLLECT_GROWTH ((size_t)8 << 20)

static void collect_if_grown(lx_runtime *rt) {
    if (rt->used > 2 * rt->collected && rt->used - rt->collected > LX_COLLECT_GROWTH) {
        lua_gc(rt->L, LUA_GCCOLLECT);
        rt->collected = rt->used;
    }
}

static void hand_back_memory(lx_runtime *rt) {
    if (rt->peak > rt->used + LX_TRIM_SLACK) malloc_trim(0);
    rt->peak = rt->used;
}

lx_runtime *lx_runtime_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static lx_runtime *runtime_of(lua_State *L) { return lx_runtime_of(L); }

// MARK: - The stop hook

int lx_raise_stop(lua_State *L, int reason) {
    lua_pushstring(L, reason == LX_STOP_TIMEOUT ? "time limit exceeded" : "interrupted by an administrator");
    return lua_error(L);
}

static void lx_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lx_runtime *rt = runtime_of(L);
    int reason = atomic_load(&rt->stop);
    if (rt->host_call) return;
    if (reason == LX_STOP_NONE) {
        // Armed for an evaluation that has ended (a coroutine that outlived it): disarm.
        lua_sethook(L, NULL, 0, 0);
        return;
    }
    lx_raise_stop(L, reason);
}

// MARK: - Where Lua turns hooks off
// Lua clears a thread's `allowhook` while it runs a finalizer (GCTM in lgc.c), a hook function
// (luaD_hook), and the message handler of an error that a hook raised, and restores it after.
// Lua code reached from there, a looping `__gc` above all, however it was installed (assigned
// to the metatable later, or `__gc = pcall` calling a looping `__call`), never sees the stop
// hook, and no public API turns hooks back on. So when the watchdog stops a chunk it also sets
// `allowhook` again on the threads it arms: the hook then fires at the next instruction of the
// finalizer, whose error Lua turns into a warning, as for any failing `__gc`, and the chunk
// ends at its next instruction. GCTM clears the flag again for the next finalizer, and the
// watchdog sets it again at its next tick (10 ms).
//
// `allowhook` is not in Lua's public headers. It is the byte after `status` at the start of
// every lua_State since 5.4.0 (lstate.h: CommonHeader — next, tt, marked — then status,
// allowhook), and lx_check_layout verifies that against the linked liblua before any state
// is made: tt reads LUA_TTHREAD, allowhook reads 1 in running code and 0 inside a hook.
#define LX_ALLOWHOOK_OFFSET (sizeof(void *) + 3)
#define LX_TT_OFFSET (sizeof(void *))

static volatile unsigned char *allowhook_of(lua_State *L) {
    return (volatile unsigned char *)L + LX_ALLOWHOOK_OFFSET;
}

static int layout_seen_in_hook = -1;

static void layout_probe_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    layout_seen_in_hook = *allowhook_of(L);
    lua_sethook(L, NULL, 0, 0);
}

static const char *layout_problem = "the layout check did not run";

static void check_layout(void) {
    lua_State *L = luaL_newstate();
    if (!L) {
        layout_problem = "cannot create a Lua state to check liblua's layout";
        return;
    }
    int tt = ((unsigned char *)L)[LX_TT_OFFSET];
    int running = *allowhook_of(L);
    lua_sethook(L, layout_probe_hook, LUA_MASKCOUNT, 1);
    int loaded = luaL_loadstring(L, "local x = 1 return x") == LUA_OK && lua_pcall(L, 0, 0, 0) == LUA_OK;
    int after = *allowhook_of(L);
    lua_close(L);
    if (!loaded || tt != LUA_TTHREAD || running != 1 || layout_seen_in_hook != 0 || after != 1)
        layout_problem = "the linked liblua is not a Lua 5.4 whose lua_State starts as 5.4.0-5.4.7's do "
                         "(luaexec reaches finalizers and hook functions through it)";
    else
        layout_problem = NULL;
}

const char *lx_check_layout(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, check_layout);
    return layout_problem;
}

static void arm(lua_State *L) {
    lua_sethook(L, lx_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKLINE | LUA_MASKCOUNT, 1);
    *allowhook_of(L) = 1;
}

// While a stop is in effect, a thread of its own sets allowhook again every 50 µs on the threads
// that may be running: a chunk that left ten thousand looping finalizers behind would otherwise
// take one watchdog tick (10 ms) for each, as GCTM clears the flag for every one. Only the byte
// is written this often; the hook itself stays armed (lx_hook disarms only once the stop is
// cleared), and lua_sethook, which walks the call list, runs at the watchdog's pace.
static void *keep_hooks_allowed(void *arg) {
    lx_runtime *rt = arg;
    const struct timespec pause = {0, 50 * 1000};
    for (;;) {
        pthread_mutex_lock(&rt->hook_lock);
        int stopping = atomic_load(&rt->stop) != LX_STOP_NONE && !rt->state_freed;
        if (stopping) {
            *allowhook_of(rt->L) = 1;
            if (rt->current) *allowhook_of(rt->current) = 1;
        }
        pthread_mutex_unlock(&rt->hook_lock);
        if (!stopping) return NULL;
        nanosleep(&pause, NULL);
    }
}

// Waits for the thread above to notice that the stop is over (or the state closed).
static void end_stopper(lx_runtime *rt) {
    pthread_mutex_lock(&rt->hook_lock);
    int running = rt->stopper_running;
    rt->stopper_running = 0;
    pthread_mutex_unlock(&rt->hook_lock);
    if (running) pthread_join(rt->stopper, NULL);
}

void lx_stop(lx_runtime *rt, int reason) {
    atomic_store(&rt->stop, reason);
    pthread_mutex_lock(&rt->hook_lock);
    // lua_sethook is safe to call asynchronously (lua.c's SIGINT handler does it); so is
    // setting allowhook, a byte the running thread only reads in luaD_hook and saves and
    // restores around finalizers and hooks.
    if (!rt->state_freed) {
        arm(rt->L);
        if (rt->current) arm(rt->current);
        if (!rt->stopper_running) rt->stopper_running = pthread_create(&rt->stopper, NULL, keep_hooks_allowed, rt) == 0;
    }
    pthread_mutex_unlock(&rt->hook_lock);
}

// MARK: - Coroutines that the watchdog can reach
// Hooks are per thread, and a coroutine created before the deadline has none. resume and wrap
// are lcorolib's, plus bookkeeping of the running coroutine so that lx_stop can arm it too.

enum { COS_RUN, COS_DEAD, COS_YIELD, COS_NORM };

static int auxstatus(lua_State *L, lua_State *co) {
    if (L == co) return COS_RUN;
    switch (lua_status(co)) {
    case LUA_YIELD:
        return COS_YIELD;
    case LUA_OK: {
        lua_Debug ar;
        if (lua_getstack(co, 0, &ar)) return COS_NORM;
        return lua_gettop(co) == 0 ? COS_DEAD : COS_YIELD;
    }
    default:
        return COS_DEAD;
    }
}

static void set_current(lx_runtime *rt, lua_State *co) {
    pthread_mutex_lock(&rt->hook_lock);
    rt->current = co;
    if (atomic_load(&rt->stop) != LX_STOP_NONE && co) arm(co);
    pthread_mutex_unlock(&rt->hook_lock);
}

static int auxresume(lua_State *L, lua_State *co, int narg) {
    int status, nres;
    if (auxstatus(L, co) != COS_YIELD) {
        // lua_resume's own words (ldo.c): a running or normal coroutine is "non-suspended".
        lua_pushstring(L, auxstatus(L, co) == COS_DEAD ? "cannot resume dead coroutine" : "cannot resume non-suspended coroutine");
        return -1;
    }
    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    lx_runtime *rt = runtime_of(L);
    lua_State *previous = rt->current;
    lua_xmove(L, co, narg);
    set_current(rt, co);
    status = lua_resume(co, L, narg, &nres);
    set_current(rt, previous);
    if (atomic_load(&rt->stop) != LX_STOP_NONE) arm(L);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

static int lx_co_resume(lua_State *L) {
    // The message of the linked liblua (5.4.4's lcorolib checks the type: "thread expected").
    luaL_checktype(L, 1, LUA_TTHREAD);
    lua_State *co = lua_tothread(L, 1);
    int r = auxresume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

// lua_resetthread runs the coroutine's pending __close handlers on the coroutine itself, which
// is not the one running: it is made `current` meanwhile, so that lx_stop arms it.
static int close_thread(lua_State *L, lua_State *co) {
    lx_runtime *rt = runtime_of(L);
    lua_State *previous = rt->current;
    set_current(rt, co);
    int status = lua_resetthread(co);
    set_current(rt, previous);
    if (atomic_load(&rt->stop) != LX_STOP_NONE) arm(L);
    return status;
}

// coroutine.close as lcorolib has it (5.4.4), with close_thread.
static int lx_co_close(lua_State *L) {
    static const char *const statname[] = {"running", "dead", "suspended", "normal"};
    luaL_checktype(L, 1, LUA_TTHREAD);  // the linked liblua's message, as lx_co_resume
    lua_State *co = lua_tothread(L, 1);
    int status = auxstatus(L, co);
    if (status != COS_DEAD && status != COS_YIELD)
        return luaL_error(L, "cannot close a %s coroutine", statname[status]);
    if (close_thread(L, co) == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
}

static int lx_co_auxwrap(lua_State *L) {
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = auxresume(L, co, lua_gettop(L));
    if (r < 0) {
        int stat = lua_status(co);
        if (stat != LUA_OK && stat != LUA_YIELD) {
            stat = close_thread(L, co);  // close its to-be-closed variables
            lua_xmove(co, L, 1);
        }
        if (stat != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
            luaL_where(L, 1);
            lua_insert(L, -2);
            lua_concat(L, 2);
        }
        return lua_error(L);
    }
    return r;
}

static int lx_co_wrap(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, lx_co_auxwrap, 1);
    return 1;
}

// MARK: - Finalizers the watchdog can reach
// Lua runs __gc metamethods with hooks disabled on the running thread (GCTM clears allowhook),
// so a looping finalizer could never be stopped. setmetatable wraps a Lua __gc in a C function
// that runs it in a fresh coroutine: hooks work there, and the coroutine is `current`, so
// lx_stop arms it. (A __gc assigned to a metatable after setmetatable is not wrapped; see
// docs/limits.md.)

// Calls upvalue 1 (the function a wrapper replaced) with this function's arguments, in place,
// and returns all its results.
static int call_original(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

// Calls upvalue 1 with this function's arguments in a fresh coroutine, where hooks work, and
// returns its results or raises its error.
static int call_in_coroutine(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    int n = lua_gettop(L);
    lua_State *co = lua_newthread(L);  // inherits the hook if the chunk is being stopped
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_xmove(L, co, 1);
    for (int i = 1; i <= n; i++) lua_pushvalue(L, i);
    lua_xmove(L, co, n);
    lua_State *previous = rt->current;
    set_current(rt, co);
    int nres = 0;
    int status = lua_resume(co, L, n, &nres);
    set_current(rt, previous);
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_xmove(co, L, 1);
        return lua_error(L);
    }
    if (!lua_checkstack(L, nres)) return luaL_error(L, "too many results");
    lua_xmove(co, L, nres);
    return nres;
}

// A finalizer's error becomes a warning, as Lua does for any __gc.
static int lx_gc_trampoline(lua_State *L) {
    call_in_coroutine(L);
    return 0;
}

// xpcall's message handler. When the error is the stop hook's, Lua calls the handler with hooks
// disabled, so a looping handler would never end: then it runs in a coroutine. Otherwise it runs
// in place, where debug.traceback sees the stack that failed.
static int lx_handler_trampoline(lua_State *L) {
    if (atomic_load(&runtime_of(L)->stop) != LX_STOP_NONE) return call_in_coroutine(L);
    return call_original(L);
}

// xpcall as lbaselib has it, with the handler wrapped; a continuation keeps it yieldable.
static int finish_xpcall(lua_State *L, int status, lua_KContext extra) {
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int lx_xpcall(lua_State *L) {
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (!lua_iscfunction(L, 2)) {
        lua_pushvalue(L, 2);
        lua_pushcclosure(L, lx_handler_trampoline, 1);
        lua_replace(L, 2);
    }
    lua_pushboolean(L, 1);
    lua_pushvalue(L, 1);
    lua_rotate(L, 3, 2);
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, finish_xpcall);
    return finish_xpcall(L, status, 2);
}

static void wrap_gc(lua_State *L, int mt) {
    lua_pushliteral(L, "__gc");
    if (lua_rawget(L, mt) == LUA_TFUNCTION && !lua_iscfunction(L, -1)) {
        lua_pushcclosure(L, lx_gc_trampoline, 1);
        lua_pushliteral(L, "__gc");
        lua_insert(L, -2);
        lua_rawset(L, mt);
    } else {
        lua_pop(L, 1);
    }
}

// setmetatable and debug.setmetatable (upvalue 1: the original; the base library's takes tables
// only). The argument checks are made here, before the original runs, so that their errors name
// the function as Lua's own do: raised inside the original, called from C, they would say
// "bad argument #1 to '?'".
static int setmetatable_checked(lua_State *L, int tables_only) {
    int t = lua_type(L, 2);
    if (tables_only) luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (t == LUA_TTABLE) wrap_gc(L, 2);
    return call_original(L);
}
static int lx_setmetatable(lua_State *L) { return setmetatable_checked(L, 1); }
static int lx_debug_setmetatable(lua_State *L) { return setmetatable_checked(L, 0); }

// MARK: - Library changes

static int lx_print(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t l;
        const char *s = luaL_tolstring(L, i, &l);
        if ((i > 1 && !buf_add(&rt->out, "\t", 1)) || !buf_add(&rt->out, s, l))
            return luaL_error(L, "output limit of %I bytes exceeded", (lua_Integer)rt->out.max);
        lua_pop(L, 1);
    }
    if (!buf_add(&rt->out, "\n", 1))
        return luaL_error(L, "output limit of %I bytes exceeded", (lua_Integer)rt->out.max);
    return 0;
}

static ssize_t out_cookie_write(void *cookie, const char *p, size_t n) {
    lx_runtime *rt = cookie;
    if (!buf_add(&rt->out, p, n)) {
        errno = ENOSPC;  // io.write then returns fail with "No space left on device"
        return 0;
    }
    return (ssize_t)n;
}

// The closef of the standard files we install: like liolib's io_noclose.
static int lx_noclose(lua_State *L) {
    luaL_Stream *p = (luaL_Stream *)luaL_checkudata(L, 1, LUA_FILEHANDLE);
    p->closef = &lx_noclose;
    luaL_pushfail(L);
    lua_pushliteral(L, "cannot close standard file");
    return 2;
}

// Pushes a Lua file handle for `f` and makes it io.<field> and the registry's `regkey`
// (the io library's default input or output).
static void install_stdfile(lua_State *L, FILE *f, const char *field, const char *regkey) {
    luaL_Stream *p = (luaL_Stream *)lua_newuserdatauv(L, sizeof(luaL_Stream), 0);
    p->f = f;
    p->closef = &lx_noclose;
    luaL_setmetatable(L, LUA_FILEHANDLE);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, regkey);
    lua_getglobal(L, "io");
    lua_insert(L, -2);
    lua_setfield(L, -2, field);
    lua_pop(L, 1);
}

static int lx_os_exit(lua_State *L) {
    return luaL_error(L, "os.exit is disabled: luaexecd serves every request from one resident state");
}

// load and loadfile, forced to text mode (upvalue 1: the original). A precompiled chunk can
// crash the VM, so binary chunks are refused everywhere.
//
// A mode without 't' ("b") keeps its meaning (SPEC E10): Lua itself refuses a text chunk with
// "attempt to load a text chunk (mode is 'b')". A binary chunk is refused too, by luaexec, with
// the same answer, since whatever such a mode lets through is binary. A reader function is not
// called then.
//
// A reader function is called through lx_checked_reader, which raises the original's error for
// a result that is not a string at the chunk's position, where Lua's own load puts it.
//
// The original's argument checks are made here first, in its order, so that their errors name
// `load` and say "no value" as Lua's own do (raised inside the original, called from C, they
// would say "bad argument #1 to '?'").
static int lx_checked_reader(lua_State *L) {
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_call(L, 0, 1);
    if (!lua_isnil(L, -1) && !lua_isstring(L, -1)) {
        luaL_where(L, 3);  // 0: this reader, 1: the original load, 2: lx_load, 3: load's caller
        lua_pushliteral(L, "reader function must return a string");
        lua_concat(L, 2);
        return lua_error(L);
    }
    return 1;
}

static int lx_textonly(lua_State *L, int modearg) {
    if (modearg == 2) luaL_optstring(L, 1, NULL);  // loadfile's file name
    const char *mode = luaL_optstring(L, modearg, "bt");
    if (modearg == 3 && !lua_isstring(L, 1)) {  // load's chunk name, then the reader
        luaL_optstring(L, 2, NULL);
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_pushvalue(L, 1);
        lua_pushcclosure(L, lx_checked_reader, 1);
        lua_replace(L, 1);
    } else if (modearg == 3) {
        luaL_optstring(L, 2, NULL);
    }
    if (lua_gettop(L) < modearg) lua_settop(L, modearg);
    if (!strchr(mode, 't')) {
        luaL_pushfail(L);
        size_t n = 0;
        const char *chunk = modearg == 3 && lua_type(L, 1) == LUA_TSTRING ? lua_tolstring(L, 1, &n) : NULL;
        if (chunk && n > 0 && chunk[0] == LUA_SIGNATURE[0])
            lua_pushliteral(L, "binary (precompiled) chunks are refused: load Lua source text");
        else
            lua_pushfstring(L, "attempt to load a text chunk (mode is '%s')", mode);
        return 2;
    }
    lua_pushliteral(L, "t");
    lua_replace(L, modearg);
    return call_original(L);
}
static int lx_load(lua_State *L) { return lx_textonly(L, 3); }
static int lx_loadfile(lua_State *L) { return lx_textonly(L, 2); }

static int lx_dofile(lua_State *L) {
    const char *fname = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    if (luaL_loadfilex(L, fname, "t") != LUA_OK) return lua_error(L);
    lua_call(L, 0, LUA_MULTRET);
    return lua_gettop(L) - 1;
}

static void replace_in(lua_State *L, const char *table, const char *name, lua_CFunction f, int keep_original) {
    if (table) lua_getglobal(L, table);
    else lua_pushglobaltable(L);
    if (keep_original) {
        lua_getfield(L, -1, name);
        lua_pushcclosure(L, f, 1);
    } else {
        lua_pushcfunction(L, f);
    }
    lua_setfield(L, -2, name);
    lua_pop(L, 1);
}

static int lx_setup(lua_State *L) {
    lx_runtime *rt = lua_touserdata(L, 1);
    luaL_openlibs(L);
    replace_in(L, NULL, "print", lx_print, 0);
    replace_in(L, NULL, "load", lx_load, 1);
    replace_in(L, NULL, "loadfile", lx_loadfile, 1);
    replace_in(L, NULL, "dofile", lx_dofile, 0);
    replace_in(L, "os", "exit", lx_os_exit, 0);
    replace_in(L, "coroutine", "resume", lx_co_resume, 0);
    replace_in(L, "coroutine", "wrap", lx_co_wrap, 0);
    replace_in(L, "coroutine", "close", lx_co_close, 0);
    replace_in(L, NULL, "setmetatable", lx_setmetatable, 1);
    replace_in(L, NULL, "xpcall", lx_xpcall, 0);
    replace_in(L, "debug", "setmetatable", lx_debug_setmetatable, 1);
    lx_open_patterns(L);
    lx_open_http(L);
    lx_open_log(L);
    lx_open_persist(L);

    static const cookie_io_functions_t out_funcs = {.write = out_cookie_write};
    FILE *out = fopencookie(rt, "w", out_funcs);
    FILE *in = fopen("/dev/null", "re");  // close-on-exec: no child of a chunk needs it
    if (!out || !in) {
        if (out) fclose(out);
        if (in) fclose(in);
        return luaL_error(L, "cannot open the standard files: %s", strerror(errno));
    }
    setvbuf(out, NULL, _IONBF, 0);  // keeps print and io.write in order
    install_stdfile(L, out, "stdout", "_IO_output");
    install_stdfile(L, in, "stdin", "_IO_input");
    return 0;
}

// The restricted profile (SPEC V1): what lets a chunk reach files, processes, native modules,
// the process's environment and the VM's internals goes. From os: execute (processes), remove,
// rename and tmpname (files: tmpname creates one), getenv (the daemon's environment may hold
// secrets), setlocale (process-wide: it changes how every later request's numbers are written
// and read). What stays reads clocks and formats dates. Raw sets, so that no metamethod an init
// script left on _G runs.
static int lx_restrict_globals(lua_State *L) {
    static const char *const removed[] = {"io", "package", "require", "debug", "dofile", "loadfile", NULL};
    static const char *const removed_os[] = {"execute", "remove", "rename", "tmpname", "getenv", "setlocale", NULL};
    lua_pushglobaltable(L);
    for (const char *const *name = removed; *name; name++) {
        lua_pushstring(L, *name);
        lua_pushnil(L);
        lua_rawset(L, -3);
    }
    lua_pushliteral(L, "os");
    if (lua_rawget(L, -2) == LUA_TTABLE) {
        for (const char *const *name = removed_os; *name; name++) {
            lua_pushstring(L, *name);
            lua_pushnil(L);
            lua_rawset(L, -3);
        }
    }
    return 0;
}

int lx_restrict(lx_runtime *rt) {
    lua_State *L = rt->L;
    lua_pushcfunction(L, lx_restrict_globals);
    int status = lua_pcall(L, 0, 0, 0);
    if (status != LUA_OK) lua_pop(L, 1);
    return status;
}

// MARK: - Life cycle

// Between evaluations only: an evaluation sets active_limit for its own duration.
void lx_set_memory_limit(lx_runtime *rt, size_t memory_limit) {
    rt->memory_limit = memory_limit;
    rt->headroom = memory_limit / 16 > LX_HEADROOM_MIN ? memory_limit / 16 : LX_HEADROOM_MIN;
    rt->active_limit = memory_limit + rt->headroom;
}

lx_runtime *lx_runtime_new(size_t memory_limit, size_t output_limit) {
    static pthread_once_t policy = PTHREAD_ONCE_INIT;
    pthread_once(&policy, set_malloc_policy);
    lx_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) return NULL;
    lx_set_memory_limit(rt, memory_limit);
    rt->out.max = output_limit;
    rt->result.max = LX_RESULT_LIMIT;
    rt->result.full = "the results exceed %I bytes";
    rt->error.max = LX_ERROR_LIMIT;
    rt->traceback.max = LX_ERROR_LIMIT;
    rt->changes.max = LX_RESULT_LIMIT;
    rt->changes.full = "persisted: the changes are too large to save";
    rt->persist_limit = (size_t)16 << 20;
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
        end_stopper(rt);
    }
    buf_free(&rt->out);
    buf_free(&rt->result);
    buf_free(&rt->error);
    buf_free(&rt->traceback);
    buf_free(&rt->changes);
    pthread_mutex_destroy(&rt->hook_lock);
    free(rt);
}

lua_State *lx_runtime_state(lx_runtime *rt) { return rt->L; }
size_t lx_memory_in_use(const lx_runtime *rt) { return rt->used; }

#define LX_BUF_KEEP ((size_t)1 << 20)

void lx_trim_buffers(lx_runtime *rt) {
    lx_buf *buffers[] = {&rt->out, &rt->result, &rt->error, &rt->traceback};
    for (size_t i = 0; i < sizeof buffers / sizeof buffers[0]; i++) {
        if (buffers[i]->cap > LX_BUF_KEEP) buf_free(buffers[i]);
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

// MARK: - Evaluation

// lua.c's msghandler, except that the traceback goes to the registry so that the message and
// the traceback reach the client as two fields.
static int lx_msghandler(lua_State *L) {
    int t = lua_type(L, 1);
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        lua_pushvalue(L, 1);
        lua_tostring(L, -1);
    } else if (!(luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)) {
        lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, NULL, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, LX_TRACEBACK_KEY);
    return 1;
}

// The result encoding, read by LuaRuntime's decoder. One tag byte, then:
//   'n' nil   't' true   'f' false   'c' a cycle   'D' nested deeper than LX_MAX_DEPTH
//   'i' int64 (8 bytes, little-endian)   'd' double (8 bytes, IEEE 754, little-endian)
//   's' u32 length + bytes: a string (in text mode: every non-nil value, as tostring gives it)
//   'o' u32 length + bytes: a function, userdata or thread, as tostring gives it
//   'a' u32 count + count values: a table with keys 1..n
//   'm' u32 count + count pairs of ('s' key, value): any other table
void lx_put(lua_State *L, lx_buf *b, const void *p, size_t n) {
    if (!buf_add(b, p, n)) luaL_error(L, b->full, (lua_Integer)b->max);
}
void lx_put_u32(lua_State *L, lx_buf *b, size_t v) {
    if (v > UINT32_MAX) luaL_error(L, "a result is too large to encode");
    unsigned char bytes[4] = {(unsigned char)v, (unsigned char)(v >> 8), (unsigned char)(v >> 16), (unsigned char)(v >> 24)};
    lx_put(L, b, bytes, 4);
}
static void put_u64(lua_State *L, lx_buf *b, uint64_t v) {
    unsigned char bytes[8];
    for (int i = 0; i < 8; i++) bytes[i] = (unsigned char)(v >> (8 * i));
    lx_put(L, b, bytes, 8);
}
static void put(lua_State *L, lx_runtime *rt, const void *p, size_t n) { lx_put(L, &rt->result, p, n); }
static void put_tag(lua_State *L, lx_runtime *rt, char tag) { put(L, rt, &tag, 1); }
static void put_u32(lua_State *L, lx_runtime *rt, size_t v) { lx_put_u32(L, &rt->result, v); }
static void put_bytes(lua_State *L, lx_runtime *rt, char tag, const char *s, size_t n) {
    put_tag(L, rt, tag);
    put_u32(L, rt, n);
    put(L, rt, s, n);
}
// tostring semantics (__tostring, __name) without calling the global `tostring`.
static void put_tostring(lua_State *L, lx_runtime *rt, char tag, int idx) {
    size_t n;
    const char *s = luaL_tolstring(L, idx, &n);
    put_bytes(L, rt, tag, s, n);
    lua_pop(L, 1);
}

static void encode(lua_State *L, lx_runtime *rt, int idx, int depth, int visiting);

static void encode_table(lua_State *L, lx_runtime *rt, int idx, int depth, int visiting) {
    if (depth > LX_MAX_DEPTH) return put_tag(L, rt, 'D');
    luaL_checkstack(L, 6, "nested too deep");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, visiting) != LUA_TNIL) {
        lua_pop(L, 1);
        return put_tag(L, rt, 'c');
    }
    lua_pop(L, 1);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, visiting);

    // An array when its keys are exactly 1..n (n > 0).
    size_t count = 0;
    lua_Integer max = 0;
    int sequence = 1;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        count++;
        if (sequence && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            lua_Integer k = lua_tointeger(L, -1);
            if (k > max) max = k;
        } else {
            sequence = 0;
        }
    }
    if (sequence && count > 0 && (size_t)max == count) {
        put_tag(L, rt, 'a');
        put_u32(L, rt, count);
        for (lua_Integer i = 1; i <= max; i++) {
            lua_rawgeti(L, idx, i);
            encode(L, rt, lua_gettop(L), depth + 1, visiting);
            lua_pop(L, 1);
        }
    } else {
        put_tag(L, rt, 'm');
        put_u32(L, rt, count);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            // Convert a copy of the key: converting it in place would confuse lua_next.
            lua_pushvalue(L, -2);
            put_tostring(L, rt, 's', lua_gettop(L));
            lua_pop(L, 1);
            encode(L, rt, lua_gettop(L), depth + 1, visiting);
            lua_pop(L, 1);
        }
    }

    lua_pushvalue(L, idx);
    lua_pushnil(L);
    lua_rawset(L, visiting);
}

int lx_put_scalar(lua_State *L, lx_buf *b, int idx) {
    char tag;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
        tag = lua_isnil(L, idx) ? 'n' : lua_toboolean(L, idx) ? 't' : 'f';
        lx_put(L, b, &tag, 1);
        return 1;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            tag = 'i';
            lx_put(L, b, &tag, 1);
            put_u64(L, b, (uint64_t)lua_tointeger(L, idx));
        } else {
            double d = (double)lua_tonumber(L, idx);
            uint64_t bits;
            memcpy(&bits, &d, sizeof bits);
            tag = 'd';
            lx_put(L, b, &tag, 1);
            put_u64(L, b, bits);
        }
        return 1;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        tag = 's';
        lx_put(L, b, &tag, 1);
        lx_put_u32(L, b, n);
        lx_put(L, b, s, n);
        return 1;
    }
    default:
        return 0;
    }
}

static void encode(lua_State *L, lx_runtime *rt, int idx, int depth, int visiting) {
    if (lx_put_scalar(L, &rt->result, idx)) return;
    switch (lua_type(L, idx)) {
    case LUA_TTABLE:
        return encode_table(L, rt, idx, depth, visiting);
    default:
        return put_tostring(L, rt, 'o', idx);
    }
}

// Called in protected mode with the chunk's results as its arguments.
static int lx_encode(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    int n = lua_gettop(L);
    rt->result.len = 0;
    put_u32(L, rt, (size_t)n);
    if (rt->render_mode == LX_RENDER_TEXT) {
        for (int i = 1; i <= n; i++) {
            if (lua_isnil(L, i)) put_tag(L, rt, 'n');
            else put_tostring(L, rt, 's', i);
        }
        return 0;
    }
    lua_newtable(L);
    int visiting = lua_gettop(L);
    for (int i = 1; i <= n; i++) encode(L, rt, i, 0, visiting);
    return 0;
}

static void take_error(lx_runtime *rt, lua_State *L) {
    size_t n = 0;
    const char *msg = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &n) : "(error object is not a string)";
    if (lua_type(L, -1) != LUA_TSTRING) n = strlen(msg);
    buf_set_truncated(&rt->error, msg, n);
    rt->traceback.len = 0;
    if (lua_getfield(L, LUA_REGISTRYINDEX, LX_TRACEBACK_KEY) == LUA_TSTRING) {
        const char *tb = lua_tolstring(L, -1, &n);
        buf_set_truncated(&rt->traceback, tb, n);
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
    rt->render_mode = render_mode;
    rt->refused = 0;
    rt->not_found = 0;
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LX_TRACEBACK_KEY);
    lua_pushcfunction(L, lx_msghandler);
    return base;
}

// Calls the function above `nargs` arguments at the top of the stack (the message handler at
// base + 1 below it), encodes its results, and restores the stack to `base`.
static int finish_call(lx_runtime *rt, int base, int nargs) {
    lua_State *L = rt->L;
    int result = LX_OK;
    rt->active_limit = rt->memory_limit;
    int status = lua_pcall(L, nargs, LUA_MULTRET, base + 1);
    rt->active_limit = rt->memory_limit + rt->headroom;
    if (status != LUA_OK) {
        take_error(rt, L);
        result = kind_of(rt, status);
        goto done;
    }
    if (rt->not_found) {
        result = LX_ERR_NOT_FOUND;
        goto done;
    }

    lua_pushcfunction(L, lx_encode);
    lua_insert(L, base + 2);
    status = lua_pcall(L, lua_gettop(L) - base - 2, 0, base + 1);
    if (status != LUA_OK) {
        take_error(rt, L);
        rt->result.len = 0;
        result = kind_of(rt, status);
        if (result == LX_ERR_RUNTIME) result = LX_ERR_RENDER;
    }

done:
    lua_settop(L, base);
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
        collect_if_grown(rt);
    }
    hand_back_memory(rt);
    return result;
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
    if (lua_getfield(L, LUA_REGISTRYINDEX, LX_CHUNKS_KEY) != LUA_TTABLE) {
        lua_pop(L, 1);
        if (!create) {
            lua_pushnil(L);
            return 0;
        }
        lua_newtable(L);
        lua_pushvalue(L, -1);
        lua_setfield(L, LUA_REGISTRYINDEX, LX_CHUNKS_KEY);
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
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, LX_CHUNKS_KEY);
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
    int status = luaL_loadbufferx(L, rt->chunk, rt->chunk_len, rt->chunk_name, "t");
    if (status == LUA_OK && cacheable) {
        lua_pushcfunction(L, lx_keep_chunk);
        lua_pushvalue(L, -2);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK) lua_pop(L, 1);
        rt->refused = 0;
    }
    return status;
}

int lx_eval(lx_runtime *rt, const char *chunk, size_t len, const char *chunkname, int render_mode) {
    lua_State *L = rt->L;
    int base = begin_call(rt, render_mode);
    rt->chunk = chunk;
    rt->chunk_len = len;
    rt->chunk_name = chunkname;
    int result;
    int status = push_chunk(rt, base);
    if (status == LUA_OK) {
        result = finish_call(rt, base, 0);
    } else {
        take_error(rt, L);
        rt->traceback.len = 0;
        lua_settop(L, base);
        result = is_memory_error(rt, status) ? LX_ERR_MEMORY : LX_ERR_SYNTAX;
    }
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
    const unsigned char *args, *end;
} invocation;

static uint32_t take_u32(lua_State *L, invocation *v) {
    if (v->end - v->args < 4) luaL_error(L, "malformed arguments");
    uint32_t n = (uint32_t)v->args[0] | (uint32_t)v->args[1] << 8 | (uint32_t)v->args[2] << 16 | (uint32_t)v->args[3] << 24;
    v->args += 4;
    return n;
}

static uint64_t take_u64(lua_State *L, invocation *v) {
    if (v->end - v->args < 8) luaL_error(L, "malformed arguments");
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)v->args[i] << (8 * i);
    v->args += 8;
    return n;
}

// Pushes one value of lx_encode's format (the tags a host sends: n t f i d s a m).
static void push_decoded(lua_State *L, invocation *v, int depth) {
    luaL_checkstack(L, 4, "arguments nested too deep");
    if (v->args >= v->end || depth > LX_MAX_DEPTH) luaL_error(L, "malformed arguments");
    char tag = (char)*v->args++;
    switch (tag) {
    case 'n': lua_pushnil(L); return;
    case 't': lua_pushboolean(L, 1); return;
    case 'f': lua_pushboolean(L, 0); return;
    case 'i': lua_pushinteger(L, (lua_Integer)take_u64(L, v)); return;
    case 'd': {
        uint64_t bits = take_u64(L, v);
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, (lua_Number)d);
        return;
    }
    case 's': {
        uint32_t n = take_u32(L, v);
        if ((size_t)(v->end - v->args) < n) luaL_error(L, "malformed arguments");
        lua_pushlstring(L, (const char *)v->args, n);
        v->args += n;
        return;
    }
    case 'a': {
        uint32_t n = take_u32(L, v);
        lua_createtable(L, (int)(n < 1024 ? n : 1024), 0);
        for (uint32_t i = 1; i <= n; i++) {
            push_decoded(L, v, depth + 1);
            lua_rawseti(L, -2, i);
        }
        return;
    }
    case 'm': {
        uint32_t n = take_u32(L, v);
        lua_createtable(L, 0, (int)(n < 1024 ? n : 1024));
        for (uint32_t i = 0; i < n; i++) {
            push_decoded(L, v, depth + 1);
            push_decoded(L, v, depth + 1);
            lua_rawset(L, -3);
        }
        return;
    }
    default:
        luaL_error(L, "malformed arguments");
    }
}

// Runs in protected mode: finds the function, pushes its arguments, calls it, returns its results.
static int invoke_registered(lua_State *L) {
    invocation *v = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (lx_push_registered(L, v->kind, v->name, v->name_len) != LUA_TFUNCTION) {
        lx_runtime_of(L)->not_found = 1;
        return 0;
    }
    uint32_t nargs = take_u32(L, v);
    for (uint32_t i = 0; i < nargs; i++) push_decoded(L, v, 0);
    lua_call(L, (int)nargs, LUA_MULTRET);
    return lua_gettop(L);
}

int lx_invoke(lx_runtime *rt, int kind, const char *name, size_t name_len, const char *args, size_t args_len,
    int render_mode) {
    lua_State *L = rt->L;
    invocation v = {.kind = kind, .name = name, .name_len = name_len, .args = (const unsigned char *)args,
        .end = (const unsigned char *)args + args_len};
    int base = begin_call(rt, render_mode);
    lua_pushcfunction(L, invoke_registered);
    lua_pushlightuserdata(L, &v);
    return finish_call(rt, base, 1);
}

void lx_stop_clear(lx_runtime *rt) {
    if (atomic_exchange(&rt->stop, LX_STOP_NONE) != LX_STOP_NONE) lua_sethook(rt->L, NULL, 0, 0);
    end_stopper(rt);
}
