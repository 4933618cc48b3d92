// CLuaSupport, layer 3 of 6: luaexec's changes to the base library. Coroutines the stop
// reaches, xpcall's handler, print and io.write captured, stdin empty, os.exit refused,
// text-only load, and the restricted profile. (patterns.c, the same layer, has the string
// library's pattern functions.) Includes baselib.h, stop.h and codec.h: knows nothing of
// evaluation or the modules. Layers, lowest first: codec, stop, baselib, eval, then
// persist/http/log side by side, then state (docs/architecture.md).

#define _GNU_SOURCE
#include "baselib.h"

#include "codec.h"
#include "stop.h"
#include "slices.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static lx_runtime *runtime_of(lua_State *L) { return lx_runtime_of(L); }

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
    lx_set_current(rt, co);
    status = lua_resume(co, L, narg, &nres);
    lx_set_current(rt, previous);
    if (atomic_load(&rt->stop) != LX_STOP_NONE) lx_arm(L);
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

// coroutine.yield: in the chunk's own code (its evaluation's coroutine, eval.c) it is the error
// lua5.4 gives on its main thread, where a chunk runs there: only `sleep` suspends a chunk.
static int lx_co_yield(lua_State *L) {
    if (L == runtime_of(L)->eval_co) {
        // Without a position, as Lua's own message has it.
        lua_pushliteral(L, "attempt to yield from outside a coroutine");
        return lua_error(L);
    }
    return lua_yield(L, lua_gettop(L));
}

static int lx_co_resume(lua_State *L) {
    // The message of the linked liblua (5.4.4's lcorolib checks the type: "thread expected").
    luaL_checktype(L, 1, LUA_TTHREAD);
    lua_State *co = lua_tothread(L, 1);
    if (lx_is_waiting(L, 1)) {
        lua_pushboolean(L, 0);
        lua_pushstring(L, "cannot resume a request's chunk that waits in sleep");
        return 2;
    }
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
    lx_set_current(rt, co);
    int status = lua_resetthread(co);
    lx_set_current(rt, previous);
    if (atomic_load(&rt->stop) != LX_STOP_NONE) lx_arm(L);
    return status;
}

// coroutine.close as lcorolib has it (5.4.4), with close_thread.
static int lx_co_close(lua_State *L) {
    static const char *const statname[] = {"running", "dead", "suspended", "normal"};
    luaL_checktype(L, 1, LUA_TTHREAD);  // the linked liblua's message, as lx_co_resume
    lua_State *co = lua_tothread(L, 1);
    if (lx_is_waiting(L, 1)) return luaL_error(L, "cannot close a request's chunk that waits in sleep");
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

// MARK: - Handlers the watchdog can reach
// Finalizers run as lua5.4 runs them (GCTM calls the `__gc` itself, so `debug.getinfo` in one
// says "metamethod" "__gc", SPEC E10): Lua turns hooks off there, and the stop turns them back
// on (stop.c, "Where Lua turns hooks off"; docs/limits.md).

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
    lx_set_current(rt, co);
    int nres = 0;
    int status = lua_resume(co, L, n, &nres);
    lx_set_current(rt, previous);
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_xmove(co, L, 1);
        return lua_error(L);
    }
    if (!lua_checkstack(L, nres)) return luaL_error(L, "too many results");
    lua_xmove(co, L, nres);
    return nres;
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

// MARK: - Library changes

static int lx_print(lua_State *L) {
    lx_runtime *rt = runtime_of(L);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++) {
        size_t l;
        const char *s = luaL_tolstring(L, i, &l);
        if ((i > 1 && !lx_buf_add(&rt->out, "\t", 1)) || !lx_buf_add(&rt->out, s, l))
            return luaL_error(L, "output limit of %I bytes exceeded", (lua_Integer)rt->output_limit);
        lua_pop(L, 1);
    }
    if (!lx_buf_add(&rt->out, "\n", 1))
        return luaL_error(L, "output limit of %I bytes exceeded", (lua_Integer)rt->output_limit);
    if (rt->output_hook) lx_output_added(rt, L);
    return 0;
}

static ssize_t out_cookie_write(void *cookie, const char *p, size_t n) {
    lx_runtime *rt = cookie;
    if (!lx_buf_add(&rt->out, p, n)) {
        errno = ENOSPC;  // io.write then returns fail with "No space left on device"
        return 0;
    }
    // io.write runs on the running thread, which `current` names (the evaluation's coroutine or
    // one it resumed).
    if (rt->output_hook) lx_output_added(rt, rt->current);
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

// os.date with the stop (upvalue 1: liblua's). liblua calls strftime once per conversion, all
// inside one C call where no hook runs: `os.date(('%%'):rep(5e7))`, within the default memory
// cap, ran 6 s past limits.time and the interrupt. A long format goes to liblua's os.date a
// piece at a time (each ending at a conversion's end, all at the same time of day), with a look
// at the stop before each. The arguments and every conversion are checked here first, as
// liblua checks them, so that its errors name `date` (not '?', as from a C caller) and quote
// the rest of the whole format, as lua5.4's do; liblua then raises nothing about them.

// Lua 5.4's LUA_STRFTIMEOPTIONS for C99 ("aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%" "||"
// "EcECExEXEyEY" "OdOeOHOIOmOMOSOuOUOVOwOWOy"), as the characters that may follow '%', 'E' and
// 'O'; a lookup per conversion rather than liblua's walk of the whole list.
#define LX_DATE_ONE "aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%"
#define LX_DATE_AFTER_E "cCxXyY"
#define LX_DATE_AFTER_O "deHImMSuUVwWy"
#define LX_DATE_PIECE 4096

// The length of the valid conversion at `conv` (just after its '%'), or 0 when there is none.
static size_t date_conversion(const char *conv, size_t left) {
    if (left == 0) return 0;
    if (memchr(LX_DATE_ONE, conv[0], sizeof LX_DATE_ONE - 1)) return 1;
    if (left < 2) return 0;
    if (conv[0] == 'E' && memchr(LX_DATE_AFTER_E, conv[1], sizeof LX_DATE_AFTER_E - 1)) return 2;
    if (conv[0] == 'O' && memchr(LX_DATE_AFTER_O, conv[1], sizeof LX_DATE_AFTER_O - 1)) return 2;
    return 0;
}

// Where the piece of the format that starts at `p` ends: at most `max` bytes on, at a
// conversion's end. Raises liblua's error for an invalid conversion in it, quoting the rest of
// the whole format.
static const char *date_piece_end(lua_State *L, const char *p, const char *end, size_t max) {
    const char *limit = (size_t)(end - p) > max ? p + max : end;
    while (p < limit) {
        const char *percent = memchr(p, '%', (size_t)(limit - p));
        if (!percent) return limit;
        p = percent + 1;
        size_t n = date_conversion(p, (size_t)(end - p));
        if (n == 0) luaL_argerror(L, 1, lua_pushfstring(L, "invalid conversion specifier '%%%s'", p));
        p += n;
    }
    return p;
}

static int lx_os_date(lua_State *L) {
    size_t len = 0;
    const char *format = luaL_optlstring(L, 1, "%c", &len);
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer given = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (time_t)given == given, 2, "time out-of-bounds");
    }
    const char *end = format + len;
    const char *s = format[0] == '!' ? format + 1 : format;
    // liblua's order: a time it cannot represent is its error before any conversion's.
    time_t when = lua_isnoneornil(L, 2) ? time(NULL) : (time_t)lua_tointeger(L, 2);
    struct tm parts;
    if ((s != format ? gmtime_r(&when, &parts) : localtime_r(&when, &parts)) == NULL) return call_original(L);
    if (strcmp(s, "*t") == 0) return call_original(L);
    if (len <= LX_DATE_PIECE) {
        date_piece_end(L, s, end, len);
        return call_original(L);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (const char *p = s; p < end;) {
        lx_check_stop(L);
        const char *cut = date_piece_end(L, p, end, LX_DATE_PIECE);
        // liblua reads a leading '!' as UTC and a format that is "*t" (as a C string) as the
        // table form: no piece after the first starts with either.
        while (cut < end && (*cut == '*' || *cut == '!')) cut++;
        lua_pushvalue(L, lua_upvalueindex(1));
        if (s != format) lua_pushliteral(L, "!");
        lua_pushlstring(L, p, (size_t)(cut - p));
        if (s != format) lua_concat(L, 2);
        lua_pushinteger(L, (lua_Integer)when);
        lua_call(L, 2, 1);
        luaL_addvalue(&b);
        p = cut;
    }
    luaL_pushresult(&b);
    return 1;
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
//
// Compiling runs in C, where no hook runs, and Lua's parser is quadratic in some constructs (a
// long `a or a or ...`): a string is compiled through lx_load_checked, which hands the parser a
// few hundred bytes at a time and looks at the stop before each; a reader's pieces are handed on
// in slices of the same size, LX_LOAD_SLICE (upvalue 2: the piece being sliced, 3: where its next
// slice starts), each after a look at the stop. A stop makes load answer fail and the stop's
// error, and the chunk ends at its next instruction.

// lbaselib's answer of load and loadfile once compiled (`status`): the function, its first
// upvalue (_ENV) set to the value at `env` when one was given (0: none), or fail and the message.
static int loaded(lua_State *L, int status, int env) {
    if (status != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env != 0) {
        lua_pushvalue(L, env);
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    }
    return 1;
}

static int lx_checked_reader(lua_State *L) {
    size_t len = 0;
    const char *piece = lua_tolstring(L, lua_upvalueindex(2), &len);
    lua_Integer at = lua_tointeger(L, lua_upvalueindex(3));
    if (!piece || (size_t)at >= len) {
        lua_pushvalue(L, lua_upvalueindex(1));
        lua_call(L, 0, 1);
        if (!lua_isnil(L, -1) && !lua_isstring(L, -1)) {
            luaL_where(L, 3);  // 0: this reader, 1: the original load, 2: lx_load, 3: load's caller
            lua_pushliteral(L, "reader function must return a string");
            lua_concat(L, 2);
            return lua_error(L);
        }
        if (lua_isnil(L, -1)) return 1;
        piece = lua_tolstring(L, -1, &len);
        if (len <= LX_LOAD_SLICE) return 1;  // as it came: the common case, nothing kept
        lua_copy(L, -1, lua_upvalueindex(2));
        at = 0;
    }
    lx_check_stop(L);
    size_t n = len - (size_t)at < LX_LOAD_SLICE ? len - (size_t)at : LX_LOAD_SLICE;
    lua_pushlstring(L, piece + at, n);
    lua_pushinteger(L, at + (lua_Integer)n);
    lua_replace(L, lua_upvalueindex(3));
    return 1;
}

static int lx_textonly(lua_State *L, int modearg) {
    if (modearg == 2) luaL_optstring(L, 1, NULL);  // loadfile's file name
    const char *mode = luaL_optstring(L, modearg, "bt");
    if (modearg == 3 && !lua_isstring(L, 1)) {  // load's chunk name, then the reader
        luaL_optstring(L, 2, NULL);
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_pushvalue(L, 1);
        lua_pushnil(L);
        lua_pushinteger(L, 0);
        lua_pushcclosure(L, lx_checked_reader, 3);
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
    if (modearg == 3 && lua_isstring(L, 1)) {
        // lbaselib's load of a string (its chunk name, its `env`), compiled in slices.
        size_t len = 0;
        const char *chunk = lua_tolstring(L, 1, &len);
        const char *chunkname = luaL_optstring(L, 2, chunk);
        int env = !lua_isnone(L, 4) ? 4 : 0;  // before the compile pushes anything
        return loaded(L, lx_load_checked(L, chunk, len, chunkname, "t"), env);
    }
    if (modearg == 2) {
        // lbaselib's loadfile (its `env`), compiled in slices as a string is: a chunk can write
        // the file it then loads.
        int env = !lua_isnone(L, 3) ? 3 : 0;  // before the compile pushes anything
        return loaded(L, lx_loadfile_checked(L, luaL_optstring(L, 1, NULL), "t"), env);
    }
    lua_pushliteral(L, "t");
    lua_replace(L, modearg);
    return call_original(L);
}
static int lx_load(lua_State *L) { return lx_textonly(L, 3); }
static int lx_loadfile(lua_State *L) { return lx_textonly(L, 2); }

// dofile as lbaselib has it, text only: with a continuation, so that the file's code may yield
// across it (`coroutine.wrap(dofile)`), as in lua5.4 (SPEC E10).
static int dofile_continued(lua_State *L, int status, lua_KContext context) {
    (void)status;
    (void)context;
    return lua_gettop(L) - 1;
}

static int lx_dofile(lua_State *L) {
    const char *fname = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    if (lx_loadfile_checked(L, fname, "t") != LUA_OK) return lua_error(L);
    lua_callk(L, 0, LUA_MULTRET, 0, dofile_continued);
    return dofile_continued(L, LUA_OK, 0);
}

// require's searcher of Lua files (package.searchers[2]) as loadlib.c has it, but compiling text
// only (a precompiled chunk can crash the VM) and through lx_loadfile_checked. Upvalue 1: the
// package table; 2: the original package.searchpath, which a chunk may replace in the table but
// not here. Its answers are loadlib's: the "no file" lines when nothing is found, the loader and
// the file's name, or "error loading module".
static int lx_searcher_lua(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, lua_upvalueindex(1), "path");
    if (!lua_isstring(L, -1)) return luaL_error(L, "'package.path' must be a string");
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, -3);
    lua_call(L, 2, 2);  // searchpath(name, package.path): the file, or fail and the "no file" lines
    if (lua_isnil(L, -2)) return 1;
    const char *filename = lua_tostring(L, -2);
    if (lx_loadfile_checked(L, filename, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, filename, lua_tostring(L, -1));
    lua_pushstring(L, filename);
    return 2;
}

static void replace_lua_searcher(lua_State *L) {
    if (lua_getglobal(L, "package") != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    if (lua_getfield(L, -1, "searchers") == LUA_TTABLE) {
        lua_pushvalue(L, -2);
        lua_getfield(L, -3, "searchpath");
        lua_pushcclosure(L, lx_searcher_lua, 2);
        lua_rawseti(L, -2, 2);
    }
    lua_pop(L, 2);
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

// Replaces the base functions (SPEC: print captured, text-only load, os.exit refused, coroutines
// the watchdog can reach), after luaL_openlibs.
void lx_replace_base(lua_State *L) {
    replace_in(L, NULL, "print", lx_print, 0);
    replace_in(L, NULL, "load", lx_load, 1);
    replace_in(L, NULL, "loadfile", lx_loadfile, 0);
    replace_in(L, NULL, "dofile", lx_dofile, 0);
    replace_in(L, "os", "exit", lx_os_exit, 0);
    replace_in(L, "os", "date", lx_os_date, 1);
    replace_in(L, "coroutine", "resume", lx_co_resume, 0);
    replace_in(L, "coroutine", "yield", lx_co_yield, 0);
    replace_in(L, "coroutine", "wrap", lx_co_wrap, 0);
    replace_in(L, "coroutine", "close", lx_co_close, 0);
    replace_in(L, NULL, "xpcall", lx_xpcall, 0);
    replace_lua_searcher(L);
}

// Makes io.stdout the output buffer and io.stdin an empty file.
int lx_open_stdfiles(lua_State *L, lx_runtime *rt) {
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
