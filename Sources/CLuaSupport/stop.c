// CLuaSupport, layer 2 of 6: the capped allocator and the stop. The allocator lua_newstate is
// given, the malloc policy and the collections after a call, the stop hook, what lets it reach
// finalizers and hook functions (allowhook, the stopper thread, the layout check), lx_stop.
// Includes stop.h and codec.h: knows nothing of the base library, evaluation or the modules.
// Layers, lowest first: codec, stop, baselib, eval, then persist/http/log side by side, then
// state (docs/architecture.md).

#define _GNU_SOURCE
#include "stop.h"
#include "slices.h"

#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

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

void lx_check_stop(lua_State *L) {
    lx_runtime *rt = lx_runtime_of(L);
    int reason = atomic_load(&rt->stop);
    if (reason != LX_STOP_NONE && !rt->host_call) lx_raise_stop(L, reason);
}

static const char *next_slice(lua_State *L, void *ud, size_t *size) {
    lx_slices *slices = ud;
    if (slices->left > 0) lx_check_stop(L);
    return lx_slices_next(slices, size);
}

int lx_load_checked(lua_State *L, const char *chunk, size_t len, const char *chunkname, const char *mode) {
    lx_slices slices = {.next = chunk, .left = len};
    return lua_load(L, next_slice, &slices, chunkname, mode);
}

// A file handed to the parser in slices: first what starts it (a BOM and a '#' line skipped,
// `first`: at most a newline and one character), then LX_LOAD_SLICE bytes at a time. All of it
// is read by the reader, inside lua_load's protection, so that the stop may be raised anywhere
// in it (the caller closes the file): a '#' line of gigabytes is skipped with the same looks.
typedef struct {
    FILE *file;
    int started;
    size_t first_len;
    char first[2];
    char piece[LX_LOAD_SLICE];
} file_slices;

// The first character after a UTF-8 byte-order mark, if the file starts with one.
static int skip_bom(FILE *file) {
    int c = getc(file);
    if (c == 0xEF && getc(file) == 0xBB && getc(file) == 0xBF) return getc(file);
    return c;
}

// What luaL_loadfilex hands the parser first: a first line starting with '#' ("#!/usr/bin/lua")
// skipped and its newline kept for the line numbers, unless a binary chunk follows it.
static void read_start(lua_State *L, file_slices *slices) {
    int c = skip_bom(slices->file);
    if (c == '#') {
        size_t skipped = 0;
        do {
            if (++skipped % LX_LOAD_SLICE == 0) lx_check_stop(L);
            c = getc(slices->file);
        } while (c != EOF && c != '\n');
        c = getc(slices->file);
        if (c != LUA_SIGNATURE[0]) slices->first[slices->first_len++] = '\n';
    }
    if (c != EOF) slices->first[slices->first_len++] = (char)c;
}

static const char *next_file_slice(lua_State *L, void *ud, size_t *size) {
    file_slices *slices = ud;
    if (!slices->started) {
        slices->started = 1;
        read_start(L, slices);
    }
    if (slices->first_len > 0) {
        *size = slices->first_len;
        slices->first_len = 0;
        return slices->first;
    }
    if (feof(slices->file) || ferror(slices->file)) {
        *size = 0;
        return NULL;
    }
    lx_check_stop(L);  // raised inside lua_load's protection: the caller still closes the file
    *size = fread(slices->piece, 1, sizeof slices->piece, slices->file);
    return *size > 0 ? slices->piece : NULL;
}

static int file_error(lua_State *L, const char *what, int name_index) {
    const char *reason = strerror(errno);
    lua_pushfstring(L, "cannot %s %s: %s", what, lua_tostring(L, name_index) + 1, reason);
    lua_remove(L, name_index);
    return LUA_ERRFILE;
}

// Opened without blocking, and read so: a terminal, a pipe or a FIFO with nothing to read
// answers "cannot read" at once instead of holding the state where the stop cannot reach (a
// chunk may name /dev/tty, a FIFO it made, /proc/self/fd/0). A regular file reads as before.
static FILE *open_nonblocking(const char *filename) {
    int fd = open(filename, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return NULL;
    FILE *file = fdopen(fd, "r");
    if (file == NULL) {
        int saved = errno;
        close(fd);
        errno = saved;
    }
    return file;
}

int lx_loadfile_checked(lua_State *L, const char *filename, const char *mode) {
    int name_index = lua_gettop(L) + 1;
    file_slices slices = {0};
    if (filename == NULL) {
        // Standard input is the chunk's io.stdin, an empty file (baselib.c), and never the
        // daemon's fd 0: a terminal under `make run` would hold the state until someone typed.
        lua_pushliteral(L, "=stdin");
        slices.file = fopen("/dev/null", "re");
    } else {
        lua_pushfstring(L, "@%s", filename);
        slices.file = open_nonblocking(filename);
    }
    if (slices.file == NULL) return file_error(L, "open", name_index);
    int status = lua_load(L, next_file_slice, &slices, lua_tostring(L, -1), mode);
    int read_failed = ferror(slices.file);
    int read_errno = errno;
    fclose(slices.file);
    if (read_failed) {
        lua_settop(L, name_index);
        errno = read_errno;
        return file_error(L, "read", name_index);
    }
    lua_remove(L, name_index);
    return status;
}

void lx_refuse_in_finalizer(lua_State *L, const char *what) {
    // Lua 5.4.4 answers -1 to every lua_gc while a finalizer runs (GCSTPGC: GCTM's own stop of
    // the collector), and only then; lx_host_pcall's LUA_GCSTOP answers 0.
    if (lua_gc(L, LUA_GCISRUNNING) < 0)
        luaL_error(L,
            "%s cannot be called from a finalizer (__gc): it runs in whichever request's evaluation "
            "collected the object, and would act in that caller's name",
            what);
}

// Streamed output (SPEC E13) is handed over at this size, or once its oldest byte is this old.
#define LX_STREAM_BYTES 4096
#define LX_STREAM_NS 100000000LL
// While output waits, the hook looks at the clock every this many VM instructions: tens of
// microseconds of Lua, so a chunk that prints and then spins still streams within the 100 ms.
#define LX_FLUSH_COUNT 1000

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void lx_hook(lua_State *L, lua_Debug *ar);

// Protected, on the stopped thread itself (from the hook): the traceback of the function the
// hook interrupted (level 1: level 0 is this function) into stop_trace.
static int capture_stop_trace(lua_State *L) {
    lx_runtime *rt = lua_touserdata(L, 1);
    lx_push_traceback(L, L, 1, rt->traceback_locals);
    // Ends as lua.c's does, as an error's traceback in the answer does (eval.c).
    if (L == rt->eval_co) {
        lua_pushliteral(L, "\n\t[C]: in ?");
        lua_concat(L, 2);
    }
    size_t n = 0;
    const char *trace = lua_tolstring(L, -1, &n);
    lx_buf_set_truncated(&rt->stop_trace, trace, n);
    return 0;
}

// Post-mortem (SPEC O11): where the stop first reached the evaluation, taken before the error
// unwinds anything (a pcall in a loop, a coroutine, a finalizer would hide it). It may allocate
// a little beyond the cap, as compiling and encoding do; a failure only leaves no traceback.
static void take_stop_trace(lx_runtime *rt, lua_State *L) {
    rt->stop_traced = 1;
    rt->stop_trace.len = 0;
    if (!rt->eval_co || !lua_checkstack(L, 4)) return;
    size_t limit = rt->active_limit;
    rt->active_limit = rt->memory_limit + rt->headroom;
    lua_pushcfunction(L, capture_stop_trace);
    lua_pushlightuserdata(L, rt);
    rt->tracing = 1;
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        rt->stop_trace.len = 0;
        lua_pop(L, 1);
    }
    rt->tracing = 0;
    rt->active_limit = limit;
}

// One hook for both of its uses, since a thread has one hook slot: the stop (armed by lx_stop
// from the watchdog's thread, every event) and the streamed output's clock (armed by print on
// the printing thread, every LX_FLUSH_COUNT instructions). The stop always wins: the flush
// arms only under hook_lock with no stop in effect, and disarms the same way, so neither can
// undo an lx_stop that raced with it.
static void lx_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    lx_runtime *rt = runtime_of(L);
    int reason = atomic_load(&rt->stop);
    if (rt->host_call || rt->tracing) return;
    if (reason != LX_STOP_NONE) {
        if (!rt->stop_traced) take_stop_trace(rt, L);
        lx_raise_stop(L, reason);
    }
    if (rt->pending_since) {
        if (now_ns() - rt->pending_since < LX_STREAM_NS) return;  // stays armed until it is due
        lx_flush_output(rt);
    }
    // Nothing to stop, nothing waiting (or armed for an evaluation that has ended: a coroutine
    // that outlived it): disarm.
    pthread_mutex_lock(&rt->hook_lock);
    if (atomic_load(&rt->stop) == LX_STOP_NONE) lua_sethook(L, NULL, 0, 0);
    pthread_mutex_unlock(&rt->hook_lock);
}

// Arms the output's clock on L, unless the stop hook or a hook of the chunk's own is there.
// Called with hook_lock held.
static void arm_flush_locked(lx_runtime *rt, lua_State *L) {
    if (atomic_load(&rt->stop) == LX_STOP_NONE && lua_gethook(L) == NULL)
        lua_sethook(L, lx_hook, LUA_MASKCOUNT, LX_FLUSH_COUNT);
}

void lx_flush_output(lx_runtime *rt) {
    rt->pending_since = 0;
    if (!rt->output_hook || rt->out.len == 0) return;
    rt->output_hook(rt->output_context, rt->out.data, rt->out.len);
    rt->out.max -= rt->out.len;
    rt->out.len = 0;
}

void lx_output_added(lx_runtime *rt, lua_State *L) {
    if (rt->out.len >= LX_STREAM_BYTES) {
        lx_flush_output(rt);
        return;
    }
    long long now = now_ns();
    if (!rt->pending_since) {
        rt->pending_since = now;
    } else if (now - rt->pending_since >= LX_STREAM_NS) {
        lx_flush_output(rt);
        return;
    }
    if (L && lua_gethook(L) != lx_hook) {
        pthread_mutex_lock(&rt->hook_lock);
        arm_flush_locked(rt, L);
        pthread_mutex_unlock(&rt->hook_lock);
    }
}

void lx_stream_output(lx_runtime *rt, lx_output_hook hook, void *context) {
    rt->output_hook = hook;
    rt->output_context = context;
    rt->pending_since = 0;
}

void lx_set_traceback_locals(lx_runtime *rt, int on) { rt->traceback_locals = on; }

// MARK: - Tracebacks with locals (SPEC O11)
// luaL_traceback's format (lauxlib.c, 5.4), with each shown frame's named locals after it, one
// per line. A value is rendered from its raw type only: no __tostring, __name, __index or
// __pairs runs, so a post-mortem never runs the chunk's code.

#define LX_LEVELS1 10
#define LX_LEVELS2 11
#define LX_LOCAL_STRING 40
#define LX_LOCAL_COUNT 10000

static int last_level(lua_State *L) {
    lua_Debug ar;
    int li = 1, le = 1;
    while (lua_getstack(L, le, &ar)) {
        li = le;
        le *= 2;
    }
    while (li < le) {
        int m = (li + le) / 2;
        if (lua_getstack(L, m, &ar)) li = m + 1;
        else le = m;
    }
    return le - 1;
}

// lauxlib's findfield and pushglobalfuncname: the function's name in package.loaded, raw.
static int find_field(lua_State *L, int objidx, int level) {
    if (level == 0 || !lua_istable(L, -1)) return 0;
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) == LUA_TSTRING) {
            if (lua_rawequal(L, objidx, -1)) {
                lua_pop(L, 1);
                return 1;
            } else if (find_field(L, objidx, level - 1)) {
                lua_pushliteral(L, ".");
                lua_replace(L, -3);
                lua_concat(L, 3);
                return 1;
            }
        }
        lua_pop(L, 1);
    }
    return 0;
}

static int push_global_func_name(lua_State *L, lua_State *L1, lua_Debug *ar) {
    int top = lua_gettop(L);
    lua_getinfo(L1, "f", ar);
    lua_xmove(L1, L, 1);
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    luaL_checkstack(L, 6, "not enough stack");
    if (find_field(L, top + 1, 2)) {
        const char *name = lua_tostring(L, -1);
        if (strncmp(name, LUA_GNAME ".", 3) == 0) {
            lua_pushstring(L, name + 3);
            lua_remove(L, -2);
        }
        lua_copy(L, -1, top + 1);
        lua_settop(L, top + 1);
        return 1;
    }
    lua_settop(L, top);
    return 0;
}

static void push_func_name(lua_State *L, lua_State *L1, lua_Debug *ar) {
    if (push_global_func_name(L, L1, ar)) {
        lua_pushfstring(L, "function '%s'", lua_tostring(L, -1));
        lua_remove(L, -2);
    } else if (*ar->namewhat != '\0') {
        lua_pushfstring(L, "%s '%s'", ar->namewhat, ar->name);
    } else if (*ar->what == 'm') {
        lua_pushliteral(L, "main chunk");
    } else if (*ar->what != 'C') {
        lua_pushfstring(L, "function <%s:%d>", ar->short_src, ar->linedefined);
    } else {
        lua_pushliteral(L, "?");
    }
}

// Pushes a short rendering of the value at the top of L (which stays there).
static void push_short(lua_State *L) {
    int t = lua_type(L, -1);
    switch (t) {
    case LUA_TNIL:
        lua_pushliteral(L, "nil");
        return;
    case LUA_TBOOLEAN:
        lua_pushstring(L, lua_toboolean(L, -1) ? "true" : "false");
        return;
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1)) lua_pushfstring(L, "%I", (LUAI_UACINT)lua_tointeger(L, -1));
        else lua_pushfstring(L, "%f", (LUAI_UACNUMBER)lua_tonumber(L, -1));
        return;
    case LUA_TSTRING: {
        size_t n = 0;
        const char *s = lua_tolstring(L, -1, &n);
        size_t shown = n > LX_LOCAL_STRING ? LX_LOCAL_STRING : n;
        // Not in the middle of a UTF-8 sequence.
        while (shown < n && shown > 0 && ((unsigned char)s[shown] & 0xC0) == 0x80) shown--;
        luaL_Buffer b;
        luaL_buffinit(L, &b);
        luaL_addchar(&b, '"');
        for (size_t i = 0; i < shown; i++) {
            unsigned char c = (unsigned char)s[i];
            if (c == '"' || c == '\\') {
                luaL_addchar(&b, '\\');
                luaL_addchar(&b, (char)c);
            } else if (c < 0x20 || c == 0x7F) {
                char escaped[8];
                snprintf(escaped, sizeof escaped, "\\%d", c);
                luaL_addstring(&b, escaped);
            } else {
                luaL_addchar(&b, (char)c);
            }
        }
        luaL_addchar(&b, '"');
        if (shown < n) {
            char more[48];
            snprintf(more, sizeof more, "... (%zu bytes)", n);
            luaL_addstring(&b, more);
        }
        luaL_pushresult(&b);
        return;
    }
    case LUA_TTABLE: {
        // Counted raw (lua_next), and only so far: a table of a million keys costs no more.
        lua_Integer count = 0;
        int more = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            lua_pop(L, 1);
            if (++count == LX_LOCAL_COUNT) {
                lua_pop(L, 1);  // the key lua_next would have taken
                more = 1;
                break;
            }
        }
        if (more) lua_pushfstring(L, "table: at least %d entries", LX_LOCAL_COUNT);
        else lua_pushfstring(L, "table: %I entries", (LUAI_UACINT)count);
        return;
    }
    case LUA_TFUNCTION: {
        lua_Debug fn;
        lua_pushvalue(L, -1);
        lua_getinfo(L, ">S", &fn);
        if (*fn.what == 'C') lua_pushliteral(L, "function: builtin");
        else lua_pushfstring(L, "function <%s:%d>", fn.short_src, fn.linedefined);
        return;
    }
    default:
        // userdata, threads: the raw type's name, never __name or __tostring.
        lua_pushstring(L, lua_typename(L, t));
        return;
    }
}

// Adds the named locals of the frame `ar` of L1, one "\n\t\tname = value" each.
static void add_locals(lua_State *L, lua_State *L1, lua_Debug *ar, luaL_Buffer *b) {
    for (int n = 1;; n++) {
        if (!lua_checkstack(L1, 1)) return;
        const char *name = lua_getlocal(L1, ar, n);
        if (!name) return;
        if (name[0] == '(') {  // temporaries and the loops' hidden state
            lua_pop(L1, 1);
            continue;
        }
        lua_xmove(L1, L, 1);
        push_short(L);
        lua_pushfstring(L, "\n\t\t%s = %s", name, lua_tostring(L, -1));
        lua_remove(L, -2);
        lua_remove(L, -2);
        luaL_addvalue(b);
    }
}

static void traceback_with_locals(lua_State *L, lua_State *L1, int level) {
    luaL_Buffer b;
    lua_Debug ar;
    int last = last_level(L1);
    int limit2show = (last - level > LX_LEVELS1 + LX_LEVELS2) ? LX_LEVELS1 : -1;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "stack traceback:");
    while (lua_getstack(L1, level++, &ar)) {
        if (limit2show-- == 0) {
            int n = last - level - LX_LEVELS2 + 1;
            lua_pushfstring(L, "\n\t...\t(skipping %d levels)", n);
            luaL_addvalue(&b);
            level += n;
        } else {
            lua_getinfo(L1, "Slnt", &ar);
            if (ar.currentline <= 0) lua_pushfstring(L, "\n\t%s: in ", ar.short_src);
            else lua_pushfstring(L, "\n\t%s:%d: in ", ar.short_src, ar.currentline);
            luaL_addvalue(&b);
            push_func_name(L, L1, &ar);
            luaL_addvalue(&b);
            if (ar.istailcall) luaL_addstring(&b, "\n\t(...tail calls...)");
            add_locals(L, L1, &ar, &b);
        }
    }
    luaL_pushresult(&b);
}

void lx_push_traceback(lua_State *L, lua_State *L1, int level, int locals) {
    if (locals) traceback_with_locals(L, L1, level);
    else luaL_traceback(L, L1, NULL, level);
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
    // Output waits to be streamed: the thread that runs now keeps its clock (SPEC E13).
    else if (co && rt->pending_since) arm_flush_locked(rt, co);
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
