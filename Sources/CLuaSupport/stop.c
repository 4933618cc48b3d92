// CLuaSupport, layer 2 of 6: the capped allocator and the stop. The allocator lua_newstate is
// given, the malloc policy and the collections after a call, the stop hook, what lets it reach
// finalizers and hook functions (allowhook, the stopper thread, the layout check), lx_stop.
// Includes stop.h and codec.h: knows nothing of the base library, evaluation or the modules.
// Layers, lowest first: codec, stop, baselib, eval, then persist/http/log side by side, then
// state (docs/architecture.md).

#define _GNU_SOURCE
#include "stop.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

// Compiling a chunk and encoding its results may use this much beyond the cap, so that an
// administrator can still run `big = nil` when live data fills the state to its limit.
#define LX_HEADROOM_MIN ((size_t)1 << 20)

// MARK: - Allocator with a cap

void *lx_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
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

void lx_set_malloc_policy(void) {
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

void lx_collect_if_grown(lx_runtime *rt) {
    if (rt->used > 2 * rt->collected && rt->used - rt->collected > LX_COLLECT_GROWTH) {
        lua_gc(rt->L, LUA_GCCOLLECT);
        rt->collected = rt->used;
    }
}

void lx_hand_back_memory(lx_runtime *rt) {
    if (rt->peak > rt->used + LX_TRIM_SLACK) malloc_trim(0);
    rt->peak = rt->used;
}

lx_runtime *lx_runtime_of(lua_State *L) {
    void *ud = NULL;
    lua_getallocf(L, &ud);
    return ud;
}

static lx_runtime *runtime_of(lua_State *L) { return lx_runtime_of(L); }

// Between evaluations only: an evaluation sets active_limit for its own duration.
void lx_set_memory_limit(lx_runtime *rt, size_t memory_limit) {
    rt->memory_limit = memory_limit;
    rt->headroom = memory_limit / 16 > LX_HEADROOM_MIN ? memory_limit / 16 : LX_HEADROOM_MIN;
    rt->active_limit = memory_limit + rt->headroom;
}

size_t lx_memory_in_use(const lx_runtime *rt) { return rt->used; }

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

void lx_arm(lua_State *L) {
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
void lx_end_stopper(lx_runtime *rt) {
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
        lx_arm(rt->L);
        if (rt->current) lx_arm(rt->current);
        if (!rt->stopper_running) rt->stopper_running = pthread_create(&rt->stopper, NULL, keep_hooks_allowed, rt) == 0;
    }
    pthread_mutex_unlock(&rt->hook_lock);
}

// The coroutine running now (NULL: the main thread), armed at once while a stop is in effect
// (baselib.c's coroutine bookkeeping; lx_stop arms it too).
void lx_set_current(lx_runtime *rt, lua_State *co) {
    pthread_mutex_lock(&rt->hook_lock);
    rt->current = co;
    if (atomic_load(&rt->stop) != LX_STOP_NONE && co) lx_arm(co);
    pthread_mutex_unlock(&rt->hook_lock);
}

void lx_stop_clear(lx_runtime *rt) {
    if (atomic_exchange(&rt->stop, LX_STOP_NONE) != LX_STOP_NONE) lua_sethook(rt->L, NULL, 0, 0);
    lx_end_stopper(rt);
}

// MARK: - Suspended evaluations (eval.c anchors them; baselib.c keeps chunks' hands off them)

int lx_is_waiting(lua_State *L, int index) {
    index = lua_absindex(L, index);
    int waiting = 0;
    if (lua_getfield(L, LUA_REGISTRYINDEX, LX_WAITING_KEY) == LUA_TTABLE) {
        lua_pushvalue(L, index);
        waiting = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return waiting;
}
