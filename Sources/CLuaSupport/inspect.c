// Completion and inspection of the live state (SPEC O10): the names a console offers after
// `sip.calls.ge`, what `sip.calls.get_all` is, and which globals are the state's own.
//
// Reading the state for a console must never run anything of the state's: a `__index` or
// `__pairs` function, a `__gc` finalizer, the function being inspected. So everything here is
// raw access through the C API: lua_rawget and lua_next on tables (never lua_gettable,
// lua_getfield or pairs), lua_getmetatable and a raw get for `__index`, which is followed only
// when it is a table (a function would have to be called), lua_getinfo and lua_getlocal with
// the function on the stack (debug.getinfo/getlocal on the function, which call nothing). The
// walk runs as the host's own protected call (lx_host_pcall: on the main state, outside the
// chunk's coroutine, with the collector stopped, so no finalizer runs either) and writes its
// answer into the result buffer, in the value encoding (codec.c) that LuaRuntime decodes.
// Nothing is written to the state: the strings pushed for keys and names are garbage for the
// collector's next cycle.
//
// Every loop is bounded: keys looked at per request (a table of a million keys answers with
// `truncated`), candidates, the `__index` chain (a cycle of tables ends there), name lengths,
// preview entries and string lengths; so is the answer.
//
// CLuaSupport, layer 5 of 6, beside persist.c, http.c, log.c and timer.c. Includes inspect.h,
// eval.h, stop.h and codec.h. Layers, lowest first: codec, stop, baselib, eval, then
// persist/http/log/timer/inspect side by side, then state (docs/architecture.md).

#include "inspect.h"

#include "codec.h"
#include "eval.h"
#include "stop.h"

#include <string.h>

// registry[LX_FRESH_GLOBALS_KEY][name] = the value the global had when the state was made.
#define LX_FRESH_GLOBALS_KEY "luaexec.fresh_globals"
// Keys looked at in one request, every table together.
#define LX_SCAN_MAX 100000
// Candidates (or globals) one answer holds.
#define LX_CANDIDATES_MAX 1000
// Tables followed through `__index`, the first included.
#define LX_INDEX_DEPTH 16
// The longest name offered or listed; a longer key is left out (and the answer says `truncated`).
#define LX_NAME_MAX 256
// A table's preview: its first entries, each string cut to a few bytes.
#define LX_PREVIEW_ENTRIES 8
#define LX_PREVIEW_BYTES 60
// An inspected string shows this much of itself.
#define LX_STRING_BYTES 200
// A `__name` longer than this is not used as a value's type name.
#define LX_TYPE_NAME_MAX 64

enum { LOOK_COMPLETE, LOOK_INSPECT, LOOK_GLOBALS };

typedef struct {
    int kind;
    // The name path, segments joined by `.` (the host checked each is a Lua name); empty: the
    // globals table.
    const char *path;
    size_t path_len;
    // Completion: the start of the name being typed, and whether it follows `:`.
    const char *word;
    size_t word_len;
    int methods;
} look_request;

// MARK: - Writing the answer (codec.c's encoding)

static void put_tag(lua_State *L, lx_buf *b, char tag) { lx_put(L, b, &tag, 1); }

static void put_string(lua_State *L, lx_buf *b, const char *s, size_t n) {
    put_tag(L, b, 's');
    lx_put_u32(L, b, n);
    lx_put(L, b, s, n);
}

static void put_literal(lua_State *L, lx_buf *b, const char *s) { put_string(L, b, s, strlen(s)); }

static void put_boolean(lua_State *L, lx_buf *b, int flag) { put_tag(L, b, flag ? 't' : 'f'); }

static void put_integer(lua_State *L, lx_buf *b, lua_Integer n) {
    lua_pushinteger(L, n);
    lx_put_scalar(L, b, -1);
    lua_pop(L, 1);
}

// Starts an array ('a') or a table ('m') whose count is known only at its end: returns where the
// count goes, for end_count.
static size_t begin_count(lua_State *L, lx_buf *b, char tag) {
    put_tag(L, b, tag);
    size_t at = b->len;
    lx_put_u32(L, b, 0);
    return at;
}

static void end_count(lx_buf *b, size_t at, size_t count) {
    unsigned char *p = (unsigned char *)b->data + at;
    p[0] = (unsigned char)count;
    p[1] = (unsigned char)(count >> 8);
    p[2] = (unsigned char)(count >> 16);
    p[3] = (unsigned char)(count >> 24);
}

// `n` cut to at most `max` bytes, not inside a UTF-8 sequence.
static size_t cut_length(const char *s, size_t n, size_t max) {
    if (n <= max) return n;
    size_t cut = max;
    while (cut > 0 && ((unsigned char)s[cut] & 0xC0) == 0x80) cut--;
    return cut;
}

// What tostring shows for a table, function, userdata or thread when it has no `__tostring`:
// `__name` (read raw) or the type, and the address. `__tostring` is never called.
static void put_opaque(lua_State *L, lx_buf *b, int idx) {
    idx = lua_absindex(L, idx);
    const char *kind = luaL_typename(L, idx);
    int named = luaL_getmetafield(L, idx, "__name") != LUA_TNIL;
    if (named && lua_type(L, -1) == LUA_TSTRING && lua_rawlen(L, -1) <= LX_TYPE_NAME_MAX) kind = lua_tostring(L, -1);
    const char *text = lua_pushfstring(L, "%s: %p", kind, lua_topointer(L, idx));
    put_tag(L, b, 'o');
    size_t n = strlen(text);
    lx_put_u32(L, b, n);
    lx_put(L, b, text, n);
    lua_pop(L, named ? 2 : 1);
}

// A value in a preview: a scalar as itself (strings cut), anything else as put_opaque.
static void put_short(lua_State *L, lx_buf *b, int idx) {
    if (lua_type(L, idx) == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        put_string(L, b, s, cut_length(s, n, LX_PREVIEW_BYTES));
    } else if (!lx_put_scalar(L, b, idx)) {
        put_opaque(L, b, idx);
    }
}

// MARK: - Reading without running anything

// Pushes the `__index` of the metatable of the value at `idx` when it is a table, read raw;
// returns 0 and pushes nothing otherwise (no metatable, no `__index`, or a function, which
// would have to be called).
static int push_index_table(lua_State *L, int idx) {
    if (!lua_getmetatable(L, idx)) return 0;
    lua_pushliteral(L, "__index");
    if (lua_rawget(L, -2) == LUA_TTABLE) {
        lua_remove(L, -2);
        return 1;
    }
    lua_pop(L, 2);
    return 0;
}

// Replaces the value on top with its field `key` as Lua's `v.key` finds it, without running
// anything: a raw get, then `__index` while it is a table, at most LX_INDEX_DEPTH tables deep.
// nil when not found so.
static void raw_field(lua_State *L, const char *key, size_t key_len) {
    int v = lua_gettop(L);
    for (int depth = 0; depth < LX_INDEX_DEPTH; depth++) {
        if (lua_type(L, v) == LUA_TTABLE) {
            lua_pushlstring(L, key, key_len);
            if (lua_rawget(L, v) != LUA_TNIL) {
                lua_replace(L, v);
                return;
            }
            lua_pop(L, 1);
        }
        if (!push_index_table(L, v)) break;
        lua_replace(L, v);
    }
    lua_pushnil(L);
    lua_replace(L, v);
}

// Pushes the value the path names: the globals table for an empty path.
static void push_path(lua_State *L, const look_request *q) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    const char *p = q->path, *end = q->path + q->path_len;
    while (p < end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        const char *stop = dot ? dot : end;
        raw_field(L, p, (size_t)(stop - p));
        p = dot ? dot + 1 : end;
    }
}

static int is_name(const char *s, size_t n) {
    if (n == 0 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return 0;
    }
    return 1;
}

// MARK: - Completion

typedef struct {
    size_t count_at, count, scanned;
    int truncated, full;
} collector;

// Adds the keys of the table at `t` that complete the word: names (a key `t.key` can reach),
// functions only after `:`.
static void collect_from(lua_State *L, lx_buf *b, int t, const look_request *q, collector *c) {
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (++c->scanned > LX_SCAN_MAX) {
            lua_pop(L, 2);
            c->truncated = c->full = 1;
            return;
        }
        if (lua_type(L, -2) == LUA_TSTRING) {
            size_t n;
            const char *key = lua_tolstring(L, -2, &n);  // a string already: nothing converted
            if (n >= q->word_len && (q->word_len == 0 || memcmp(key, q->word, q->word_len) == 0) && is_name(key, n)
                && (!q->methods || lua_type(L, -1) == LUA_TFUNCTION)) {
                if (n > LX_NAME_MAX) {
                    c->truncated = 1;
                } else if (c->count == LX_CANDIDATES_MAX) {
                    lua_pop(L, 2);
                    c->truncated = c->full = 1;
                    return;
                } else {
                    put_tag(L, b, 'a');
                    lx_put_u32(L, b, 2);
                    put_string(L, b, key, n);
                    put_literal(L, b, luaL_typename(L, -1));
                    c->count++;
                }
            }
        }
        lua_pop(L, 1);
    }
}

// {candidates = {{name, type}, ...}, truncated = bool}: the fields of the value the path names
// and of the tables its `__index` chain reaches, in that order (the host drops the names a
// table earlier in the chain already gave).
static void complete(lua_State *L, lx_buf *b, const look_request *q) {
    push_path(L, q);
    int v = lua_gettop(L);
    collector c = {0};
    put_tag(L, b, 'm');
    lx_put_u32(L, b, 2);
    put_literal(L, b, "candidates");
    c.count_at = begin_count(L, b, 'a');
    const void *seen[LX_INDEX_DEPTH];
    int seen_count = 0;
    for (int depth = 0; depth < LX_INDEX_DEPTH && !c.full; depth++) {
        if (lua_type(L, v) == LUA_TTABLE) {
            const void *table = lua_topointer(L, v);
            int again = 0;
            for (int i = 0; i < seen_count; i++) again |= seen[i] == table;
            if (again) break;
            seen[seen_count++] = table;
            collect_from(L, b, v, q, &c);
        }
        if (c.full || !push_index_table(L, v)) break;
        lua_replace(L, v);
    }
    end_count(b, c.count_at, c.count);
    put_literal(L, b, "truncated");
    put_boolean(L, b, c.truncated);
    lua_settop(L, v - 1);
}

// MARK: - Inspection

// A function's parameters and where it was defined: lua_getinfo and lua_getlocal on the
// function itself (debug.getinfo(f, "Su"), debug.getlocal(f, i)), which call nothing.
static size_t put_function(lua_State *L, lx_buf *b, int f) {
    lua_Debug ar;
    lua_pushvalue(L, f);
    lua_getinfo(L, ">Su", &ar);
    put_literal(L, b, "what");
    put_literal(L, b, ar.what);
    put_literal(L, b, "source");
    put_literal(L, b, ar.short_src);
    if (ar.what[0] == 'C') return 2;
    put_literal(L, b, "line");
    put_integer(L, b, ar.linedefined);
    put_literal(L, b, "lastline");
    put_integer(L, b, ar.lastlinedefined);
    put_literal(L, b, "vararg");
    put_boolean(L, b, ar.isvararg);
    put_literal(L, b, "params");
    put_tag(L, b, 'a');
    lx_put_u32(L, b, ar.nparams);
    lua_pushvalue(L, f);
    for (int i = 1; i <= ar.nparams; i++) {
        const char *name = lua_getlocal(L, NULL, i);
        if (!name) name = "?";
        put_literal(L, b, name);
    }
    lua_pop(L, 1);
    return 6;
}

// A table's size (its border `#t` read raw, and its keys counted, up to LX_SCAN_MAX) and its
// first entries. The keys are counted with lua_next: `__pairs` and `__len` are never called.
static size_t put_table(lua_State *L, lx_buf *b, int t) {
    put_literal(L, b, "length");
    put_integer(L, b, (lua_Integer)lua_rawlen(L, t));
    put_literal(L, b, "preview");
    size_t at = begin_count(L, b, 'a');
    size_t keys = 0, shown = 0;
    int exact = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (keys == LX_SCAN_MAX) {
            lua_pop(L, 2);
            exact = 0;
            break;
        }
        keys++;
        if (shown < LX_PREVIEW_ENTRIES) {
            put_tag(L, b, 'm');
            lx_put_u32(L, b, 3);
            put_literal(L, b, "key");
            put_short(L, b, -2);
            put_literal(L, b, "type");
            put_literal(L, b, luaL_typename(L, -1));
            put_literal(L, b, "value");
            put_short(L, b, -1);
            shown++;
        }
        lua_pop(L, 1);
    }
    end_count(b, at, shown);
    put_literal(L, b, "keys");
    put_integer(L, b, (lua_Integer)keys);
    put_literal(L, b, "keys_exact");
    put_boolean(L, b, exact);
    put_literal(L, b, "truncated");
    put_boolean(L, b, !exact || shown < keys);
    return 5;
}

// What the value the path names is: {type, value, and per type: a function's parameters and
// source, a table's size and preview, a string's length}, plus `metatable` and what its
// `__index` is, when it has one.
static void inspect(lua_State *L, lx_buf *b, const look_request *q) {
    push_path(L, q);
    int v = lua_gettop(L);
    int type = lua_type(L, v);
    size_t at = begin_count(L, b, 'm');
    size_t fields = 2;
    put_literal(L, b, "type");
    put_literal(L, b, lua_typename(L, type));
    put_literal(L, b, "value");
    if (type == LUA_TSTRING) {
        size_t n;
        const char *s = lua_tolstring(L, v, &n);
        size_t cut = cut_length(s, n, LX_STRING_BYTES);
        put_string(L, b, s, cut);
        put_literal(L, b, "length");
        put_integer(L, b, (lua_Integer)n);
        put_literal(L, b, "truncated");
        put_boolean(L, b, cut < n);
        fields += 2;
    } else if (!lx_put_scalar(L, b, v)) {
        put_opaque(L, b, v);
    }
    if (type == LUA_TFUNCTION) fields += put_function(L, b, v);
    if (type == LUA_TTABLE) fields += put_table(L, b, v);
    if (type != LUA_TSTRING && lua_getmetatable(L, v)) {
        put_literal(L, b, "metatable");
        put_boolean(L, b, 1);
        fields++;
        lua_pushliteral(L, "__index");
        int index = lua_rawget(L, -2);
        if (index != LUA_TNIL) {
            put_literal(L, b, "index");
            put_literal(L, b, lua_typename(L, index));
            fields++;
        }
        lua_pop(L, 2);
    }
    end_count(b, at, fields);
    lua_settop(L, v - 1);
}

// MARK: - The state's own globals

// {globals = {{name, type}, ...}, truncated = bool}: the globals a fresh state does not have, or
// holds another value under (a chunk's `print = ...`).
static void own_globals(lua_State *L, lx_buf *b) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    int g = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, LX_FRESH_GLOBALS_KEY);
    int fresh = lua_gettop(L);
    int have_fresh = lua_type(L, fresh) == LUA_TTABLE;
    put_tag(L, b, 'm');
    lx_put_u32(L, b, 2);
    put_literal(L, b, "globals");
    size_t at = begin_count(L, b, 'a');
    size_t count = 0, scanned = 0;
    int truncated = 0;
    lua_pushnil(L);
    while (lua_next(L, g)) {
        if (++scanned > LX_SCAN_MAX || count == LX_CANDIDATES_MAX) {
            lua_pop(L, 2);
            truncated = 1;
            break;
        }
        if (lua_type(L, -2) == LUA_TSTRING) {
            int own = 1;
            if (have_fresh) {
                lua_pushvalue(L, -2);
                lua_rawget(L, fresh);
                own = !lua_rawequal(L, -1, -2);
                lua_pop(L, 1);
            }
            size_t n;
            const char *name = lua_tolstring(L, -2, &n);
            if (own && n > LX_NAME_MAX) {
                truncated = 1;
            } else if (own) {
                put_tag(L, b, 'a');
                lx_put_u32(L, b, 2);
                put_string(L, b, name, n);
                put_literal(L, b, luaL_typename(L, -1));
                count++;
            }
        }
        lua_pop(L, 1);
    }
    end_count(b, at, count);
    put_literal(L, b, "truncated");
    put_boolean(L, b, truncated);
    lua_settop(L, g - 1);
}

// MARK: - Entry points

// The host's protected call: the request is the light userdata at 1.
static int look(lua_State *L) {
    const look_request *q = lua_touserdata(L, 1);
    lx_buf *b = &lx_runtime_of(L)->result;
    lua_settop(L, 0);
    luaL_checkstack(L, 24, "not enough stack to inspect");
    b->len = 0;
    lx_put_u32(L, b, 1);
    switch (q->kind) {
    case LOOK_COMPLETE: complete(L, b, q); break;
    case LOOK_INSPECT: inspect(L, b, q); break;
    default: own_globals(L, b); break;
    }
    return 0;
}

static int run_look(lx_runtime *rt, const look_request *q) {
    lua_State *L = rt->L;
    rt->result.len = rt->error.len = rt->traceback.len = 0;
    lua_pushcfunction(L, look);
    lua_pushlightuserdata(L, (void *)q);
    int status = lx_host_status(rt, lx_host_pcall(rt, 1));
    if (status != LX_OK) rt->result.len = 0;
    return status;
}

int lx_complete(lx_runtime *rt, const char *path, size_t path_len, const char *word, size_t word_len, int methods) {
    look_request q = {.kind = LOOK_COMPLETE, .path = path, .path_len = path_len, .word = word, .word_len = word_len,
        .methods = methods};
    return run_look(rt, &q);
}

int lx_inspect(lx_runtime *rt, const char *path, size_t path_len) {
    look_request q = {.kind = LOOK_INSPECT, .path = path, .path_len = path_len};
    return run_look(rt, &q);
}

int lx_own_globals(lx_runtime *rt) {
    look_request q = {.kind = LOOK_GLOBALS};
    return run_look(rt, &q);
}

void lx_open_inspect(lua_State *L) {
    lua_newtable(L);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -5);
    }
    lua_pop(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, LX_FRESH_GLOBALS_KEY);
}
