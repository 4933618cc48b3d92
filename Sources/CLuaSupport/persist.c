// `persisted`, `shared` and `config` (SPEC V5, V6): the state's data that outlives it.
//
// `persisted` and every table under it are proxies: empty tables whose metatable reads and writes
// a hidden backing table. A write checks the value (strings, numbers, booleans and tables of them;
// no cycles; the size cap), copies tables in as new proxies, and marks the top-level key it falls
// under as dirty. After each evaluation the host takes the dirty keys, encoded, and commits them to
// SQLite before it answers (lx_take_changes). A request that never touches `persisted` costs one
// integer test. Assigning copies: changing a table after storing it changes nothing stored.
//
// `config` is a flat store of scalars by path. config.set marks the path changed (committed like
// `persisted`) and queues the functions registered for it; the host runs each queued call after the
// job, under the limits of a chunk (lx_next_config_call, then lx_invoke with LX_KIND_CONFIG_CALL).
//
// CLuaSupport, layer 5 of 6, beside http.c and log.c. Includes persist.h, stop.h (the runtime),
// eval.h (the host's own protected calls, lx_host_pcall) and codec.h (the encoding of the
// changes). lx_invoke reaches lx_push_config_call through state.c. Layers, lowest first: codec, stop, baselib, eval, then persist/http/log side
// by side, then state (docs/architecture.md).

#include "persist.h"

#include "codec.h"
#include "eval.h"
#include "stop.h"

#include <string.h>

#define P_BACKING "luaexec.persist.backing"  // weak keys: proxy -> backing table
#define P_TOP "luaexec.persist.top"          // weak keys: proxy -> top-level key (none for the root)
#define P_DEPTH "luaexec.persist.depth"      // weak keys: proxy -> its depth (0: a top-level value; none for the root)
#define P_DETACHED "luaexec.persist.detached"  // weak keys: proxy -> true: no longer in `persisted` (replaced or removed)
#define P_ROOT "luaexec.persist.root"        // the root proxy, the global `persisted`
#define P_DIRTY "luaexec.persist.dirty"      // top-level key -> true
#define P_META "luaexec.persisted"           // the proxies' metatable
#define C_VALUES "luaexec.config.values"     // path -> value
#define C_CALLBACKS "luaexec.config.callbacks"  // path -> sequence of functions
#define C_CHANGED "luaexec.config.changed"   // path -> true: set by a chunk, not yet committed
#define C_QUEUE "luaexec.config.queue"       // sequence of {fn, path} still to call
#define C_CALL "luaexec.config.call"         // the call lx_invoke makes next: {fn, path}
// Config callbacks of stored scripts (SPEC V8): withdrawn with the script, replaced by its next
// version, undone with a run that fails, as its endpoints and actions are (http.c).
#define C_OWNERS "luaexec.config.owners"     // weak keys: function -> the stored script whose run registered it
#define C_SAVED "luaexec.config.saved"       // the callbacks before a stored script's run (a copy)
#define C_TOUCHED "luaexec.config.touched"   // function -> true: registered during that run
#define LX_PERSIST_DEPTH 64
#define LX_CONFIG_PATH_MAX 256
// The config store holds settings, not data (that is `persisted`'s): a value of tens of MiB
// made every later request fail until a reset. AccessControl's ConfigValue states the same
// bounds for the CLI and the admin API.
#define LX_CONFIG_VALUE_MAX ((size_t)64 << 10)
#define LX_CONFIG_TOTAL_MAX ((size_t)1 << 20)

// Raises the message on top of the stack, prefixed with the line of the code that assigned
// (level 1: the function that called this C metamethod).
static int raise_here(lua_State *L) {
    luaL_where(L, 1);
    lua_insert(L, -2);
    lua_concat(L, 2);
    return lua_error(L);
}

// MARK: - Proxies

static void push_registry(lua_State *L, const char *key) { lua_getfield(L, LUA_REGISTRYINDEX, key); }

// Pushes the backing table of `proxy`, or nil when it is not one of ours.
static int push_backing(lua_State *L, int proxy) {
    proxy = lua_absindex(L, proxy);
    push_registry(L, P_BACKING);
    lua_pushvalue(L, proxy);
    lua_rawget(L, -2);
    lua_remove(L, -2);
    return lua_type(L, -1) == LUA_TTABLE;
}

// Keys are strings and integers (a float with an integral value becomes that integer).
static void check_key(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) == LUA_TSTRING || lua_isinteger(L, idx)) return;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        lua_Integer n;
        if (lua_numbertointeger(lua_tonumber(L, idx), &n) && (lua_Number)n == lua_tonumber(L, idx)) {
            lua_pushinteger(L, n);
            lua_replace(L, idx);
            return;
        }
    }
    if (lua_type(L, idx) == LUA_TNUMBER)
        lua_pushfstring(L, "persisted: keys must be strings or integers, not the float %f", lua_tonumber(L, idx));
    else
        lua_pushfstring(L, "persisted: keys must be strings or integers, not %s", luaL_typename(L, idx));
    raise_here(L);
}

static size_t scalar_size(lua_State *L, int idx) {
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN: return 1;
    case LUA_TNUMBER: return 9;
    case LUA_TSTRING: return 5 + lua_rawlen(L, idx);
    default: return 1;
    }
}

// What one config entry counts against LX_CONFIG_TOTAL_MAX: its path and value as stored.
static size_t config_entry_size(lua_State *L, int path, int value) {
    return lua_isnil(L, value) ? 0 : lua_rawlen(L, path) + scalar_size(L, value);
}

// The encoded size of a stored value (a proxy's contents, recursively).
static size_t stored_size(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TTABLE) return scalar_size(L, idx);
    luaL_checkstack(L, 4, "persisted: nested too deep");
    if (!push_backing(L, idx)) {
        lua_pop(L, 1);
        return 5;
    }
    int backing = lua_gettop(L);
    size_t size = 5;
    lua_pushnil(L);
    while (lua_next(L, backing)) {
        size += scalar_size(L, -2) + stored_size(L, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return size;
}

// The depth of a proxy: 0 for a table stored directly in `persisted`, one more per level below;
// -1 for the root. A depth is where a table is stored, not how deep the value assigned was:
// nesting built up one assignment at a time (`t.x = {} t = t.x` in a loop) is counted whole.
static int proxy_depth(lua_State *L, int proxy) {
    proxy = lua_absindex(L, proxy);
    push_registry(L, P_DEPTH);
    lua_pushvalue(L, proxy);
    lua_rawget(L, -2);
    int depth = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : -1;
    lua_pop(L, 2);
    return depth;
}

// Pushes a new proxy (and its backing table) at `depth` under top-level key `top`; leaves the
// backing table's index in *backing.
static void new_proxy(lua_State *L, int top, int depth, int *backing) {
    lua_newtable(L);  // backing
    lua_newtable(L);  // proxy
    luaL_setmetatable(L, P_META);
    push_registry(L, P_BACKING);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, -4);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    push_registry(L, P_TOP);
    lua_pushvalue(L, -2);
    lua_pushvalue(L, top);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    if (depth >= 0) {
        push_registry(L, P_DEPTH);
        lua_pushvalue(L, -2);
        lua_pushinteger(L, depth);
        lua_rawset(L, -3);
        lua_pop(L, 1);
    }
    *backing = lua_gettop(L) - 1;
}

// Pushes what `idx` becomes inside `persisted`: scalars as they are, tables copied into new
// proxies at `depth` (a table's depth where it is stored, see proxy_depth). Raises a clear error
// for anything else, a cycle, or nesting past LX_PERSIST_DEPTH; the caller stores nothing then.
// Adds the encoded size to *size.
static void copy_in(lua_State *L, int idx, int top, int visiting, int depth, size_t *size) {
    idx = lua_absindex(L, idx);
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TNUMBER:
    case LUA_TSTRING:
        *size += scalar_size(L, idx);
        lua_pushvalue(L, idx);
        return;
    case LUA_TTABLE:
        break;
    default:
        lua_pushfstring(L, "persisted: cannot store a %s (only strings, numbers, booleans and tables of them)",
            luaL_typename(L, idx));
        raise_here(L);
        return;
    }
    if (depth > LX_PERSIST_DEPTH) {
        lua_pushfstring(L, "persisted: tables nested deeper than %d levels", LX_PERSIST_DEPTH);
        raise_here(L);
    }
    luaL_checkstack(L, 8, "persisted: nested too deep");
    int source = idx;
    if (push_backing(L, idx)) {
        source = lua_gettop(L);  // a proxy: copy what it holds
    } else {
        lua_pop(L, 1);
        if (lua_getmetatable(L, idx)) {
            lua_pushliteral(L, "persisted: cannot store a table with a metatable");
            raise_here(L);
        }
    }
    lua_pushvalue(L, source);
    if (lua_rawget(L, visiting) != LUA_TNIL) {
        lua_pushliteral(L, "persisted: cannot store a table that contains itself");
        raise_here(L);
    }
    lua_pop(L, 1);
    lua_pushvalue(L, source);
    lua_pushboolean(L, 1);
    lua_rawset(L, visiting);

    int backing;
    new_proxy(L, top, depth, &backing);
    int proxy = lua_gettop(L);
    *size += 5;
    lua_pushnil(L);
    while (lua_next(L, source)) {
        lua_pushvalue(L, -2);
        check_key(L, -1);
        *size += scalar_size(L, -1);
        copy_in(L, -2, top, visiting, depth + 1, size);
        lua_rawset(L, backing);
        lua_pop(L, 1);
    }
    lua_pushvalue(L, source);
    lua_pushnil(L);
    lua_rawset(L, visiting);
    // Leave only the proxy above what was there.
    lua_replace(L, backing);
    lua_settop(L, backing);
    if (source != idx) lua_remove(L, source);
}

// Marks the proxy at `idx` and every proxy under it as no longer in `persisted`: the value they
// held was replaced or removed, and its size taken off the count. A chunk may still hold one (a
// local kept from before); a write through it would count, and mark dirty, what is not stored.
static void detach(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) return;
    luaL_checkstack(L, 4, "persisted: nested too deep");
    if (!push_backing(L, idx)) {
        lua_pop(L, 1);
        return;
    }
    int backing = lua_gettop(L);
    push_registry(L, P_DETACHED);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lua_pushnil(L);
    while (lua_next(L, backing)) {
        detach(L, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

static int is_detached(lua_State *L, int proxy) {
    proxy = lua_absindex(L, proxy);
    push_registry(L, P_DETACHED);
    lua_pushvalue(L, proxy);
    int detached = lua_rawget(L, -2) != LUA_TNIL;
    lua_pop(L, 2);
    return detached;
}

// The keys and paths one evaluation may mark changed, encoded, in all: a key set and removed
// again leaves nothing against limits.persisted or the config cap, yet it is in the changes
// (as removed) until they are taken. Without this bound a loop of such writes grew the
// changes past what their encoding may hold, and every later save failed.
#define LX_CHANGED_MAX ((size_t)16 << 20)

// Counts `size` more bytes of changed keys; raises (nothing marked yet) past LX_CHANGED_MAX.
static void charge_changed(lua_State *L, const char *what, size_t size) {
    lx_runtime *rt = lx_runtime_of(L);
    if (rt->changed_bytes + size > LX_CHANGED_MAX)
        luaL_error(L,
            "%s: this evaluation changed keys of %I bytes in all, the most one may (they are saved together): "
            "change fewer keys at a time",
            what, (lua_Integer)LX_CHANGED_MAX);
    rt->changed_bytes += size;
}

static void mark_dirty(lua_State *L, int top) {
    push_registry(L, P_DIRTY);
    lua_pushvalue(L, top);
    if (lua_rawget(L, -2) == LUA_TNIL) charge_changed(L, "persisted", scalar_size(L, top) + 1);
    lua_pop(L, 1);
    lua_pushvalue(L, top);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
    lx_runtime_of(L)->persist_dirty = 1;
}

static int p_newindex(lua_State *L) {
    lx_runtime *rt = lx_runtime_of(L);
    lua_settop(L, 3);
    if (!push_backing(L, 1)) return luaL_error(L, "persisted: not a persisted table");  // 4
    if (is_detached(L, 1)) {
        lua_pushliteral(L, "persisted: this table is no longer in persisted (it was replaced or removed): "
                           "assign it again to store it");
        return raise_here(L);
    }
    check_key(L, 2);
    // The top-level key this write falls under: the key itself at the root.
    push_registry(L, P_TOP);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_pushvalue(L, 2);
    }
    lua_remove(L, -2);  // 5: top
    lua_pushvalue(L, 2);
    lua_rawget(L, 4);  // 6: the old value
    size_t old_size = lua_isnil(L, 6) ? 0 : scalar_size(L, 2) + stored_size(L, 6);
    lua_newtable(L);  // 7: tables being copied
    size_t new_size = 0;
    copy_in(L, 3, 5, 7, proxy_depth(L, 1) + 1, &new_size);  // 8
    if (lua_isnil(L, 8)) new_size = 0;
    else new_size += scalar_size(L, 2);
    if (new_size > old_size && rt->persist_bytes - old_size + new_size > rt->persist_limit) {
        lua_pushfstring(L, "persisted: storing this would exceed the size limit of %I bytes (%I in use)",
            (lua_Integer)rt->persist_limit, (lua_Integer)rt->persist_bytes);
        return raise_here(L);
    }
    mark_dirty(L, 5);  // first: a key marked but unchanged is merely written again
    detach(L, 6);  // what was there, if a table, leaves persisted with its size
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 8);
    lua_rawset(L, 4);
    rt->persist_bytes = rt->persist_bytes - old_size + new_size;
    return 0;
}

static int p_index(lua_State *L) {
    if (!push_backing(L, 1)) return 0;
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

// `next` over a backing table (the global `next` may have been replaced).
static int p_next(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 2);
    if (lua_next(L, 1)) return 2;
    lua_pushnil(L);
    return 1;
}

static int p_pairs(lua_State *L) {
    lua_pushcfunction(L, p_next);
    if (!push_backing(L, 1)) return luaL_error(L, "persisted: not a persisted table");
    lua_pushnil(L);
    return 3;
}

static int p_len(lua_State *L) {
    if (!push_backing(L, 1)) return 0;
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, -1));
    return 1;
}

static void weak_keyed_table(lua_State *L, const char *key) {
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, key);
}

// MARK: - Encoding for the host
// Tags as lx_encode's: 'n' nil (a removed key), 't', 'f', 'i' int64, 'd' double, 's' u32 + bytes,
// 'm' u32 count + (key, value) pairs with typed keys ('s' or 'i').

static void out_value(lua_State *L, lx_runtime *rt, int idx) {
    if (lx_put_scalar(L, &rt->changes, idx)) return;
    luaL_checkstack(L, 4, "persisted: nested too deep");
    if (!push_backing(L, idx)) luaL_error(L, "persisted: holds a value it cannot save");
    int backing = lua_gettop(L);
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, backing)) {
        lua_pop(L, 1);
        count++;
    }
    lx_put(L, &rt->changes, "m", 1);
    lx_put_u32(L, &rt->changes, count);
    lua_pushnil(L);
    while (lua_next(L, backing)) {
        out_value(L, rt, lua_gettop(L) - 1);
        out_value(L, rt, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

// Writes `set` (a table of key -> true) as u32 count, then per key: the key, then what `values`
// holds under it (nil: removed); clears `set` as it goes.
static void out_changes(lua_State *L, lx_runtime *rt, int set, int values) {
    size_t count = 0;
    lua_pushnil(L);
    while (lua_next(L, set)) {
        lua_pop(L, 1);
        count++;
    }
    lx_put_u32(L, &rt->changes, count);
    lua_pushnil(L);
    while (lua_next(L, set)) {
        lua_pop(L, 1);
        out_value(L, rt, -1);
        lua_pushvalue(L, -1);
        lua_rawget(L, values);
        out_value(L, rt, -1);
        lua_pop(L, 1);
    }
}

// Empties a set of changed keys. Assigning nil to a field that exists allocates nothing, and is
// allowed during the traversal (lua_next's manual entry): this cannot fail.
static void clear_set(lua_State *L, int set) {
    lua_pushnil(L);
    while (lua_next(L, set)) {
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushnil(L);
        lua_rawset(L, set);
    }
}

// All or nothing: both sections are encoded before either set of changed keys is emptied, so an
// encoding that fails (an allocation) leaves every change marked, none half taken.
static int take_changes(lua_State *L) {
    lx_runtime *rt = lx_runtime_of(L);
    rt->changes.len = 0;
    push_registry(L, P_DIRTY);
    push_registry(L, P_ROOT);
    push_backing(L, -1);
    push_registry(L, C_CHANGED);
    push_registry(L, C_VALUES);
    out_changes(L, rt, 1, 3);
    out_changes(L, rt, 4, 5);
    clear_set(L, 1);
    clear_set(L, 4);
    rt->persist_dirty = 0;
    rt->config_dirty = 0;
    rt->changed_bytes = 0;
    return 0;
}

// Protected, though nothing here allocates: the registry's keys are interned already, and
// assigning nil to fields that exist takes no memory.
static int drop_changes(lua_State *L) {
    push_registry(L, P_DIRTY);
    clear_set(L, 1);
    push_registry(L, C_CHANGED);
    clear_set(L, 2);
    return 0;
}

void lx_drop_changes(lx_runtime *rt) {
    lua_pushcfunction(rt->L, drop_changes);
    (void)lx_host_status(rt, lx_host_pcall(rt, 0));
    rt->persist_dirty = 0;
    rt->config_dirty = 0;
    rt->changed_bytes = 0;
}

int lx_take_changes(lx_runtime *rt, const char **data, size_t *len) {
    lua_State *L = rt->L;
    *data = NULL;
    *len = 0;
    if (!rt->persist_dirty && !rt->config_dirty) return LX_OK;
    lua_pushcfunction(L, take_changes);
    int status = lx_host_status(rt, lx_host_pcall(rt, 0));
    if (status != LX_OK) return status;
    *data = rt->changes.data;
    *len = rt->changes.len;
    return LX_OK;
}

int lx_has_changes(const lx_runtime *rt) { return rt->persist_dirty || rt->config_dirty; }

// MARK: - Loading what was saved

typedef struct {
    const unsigned char *p, *end;
} reader;

static uint64_t read_u(lua_State *L, reader *r, int bytes) {
    if (r->end - r->p < bytes) luaL_error(L, "stored data is damaged (cut short)");
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)r->p[i] << (8 * i);
    r->p += bytes;
    return v;
}

// Pushes one stored value; tables become proxies under top-level key `top`.
static void read_value(lua_State *L, reader *r, int top, int depth) {
    luaL_checkstack(L, 6, "stored data nested too deep");
    if (r->p >= r->end || depth > LX_PERSIST_DEPTH + 1) luaL_error(L, "stored data is damaged");
    char tag = (char)*r->p++;
    if (tag == 'm' && top == 0) luaL_error(L, "stored data is damaged (a table as a key)");
    switch (tag) {
    case 'n': lua_pushnil(L); return;
    case 't': lua_pushboolean(L, 1); return;
    case 'f': lua_pushboolean(L, 0); return;
    case 'i': lua_pushinteger(L, (lua_Integer)read_u(L, r, 8)); return;
    case 'd': {
        uint64_t bits = read_u(L, r, 8);
        double d;
        memcpy(&d, &bits, sizeof d);
        lua_pushnumber(L, (lua_Number)d);
        return;
    }
    case 's': {
        size_t n = (size_t)read_u(L, r, 4);
        if ((size_t)(r->end - r->p) < n) luaL_error(L, "stored data is damaged (cut short)");
        lua_pushlstring(L, (const char *)r->p, n);
        r->p += n;
        return;
    }
    case 'm': {
        size_t n = (size_t)read_u(L, r, 4);
        int backing;
        new_proxy(L, top, depth, &backing);
        for (size_t i = 0; i < n; i++) {
            read_value(L, r, top, depth + 1);
            read_value(L, r, top, depth + 1);
            lua_rawset(L, backing);
        }
        lua_replace(L, backing);
        return;
    }
    default: luaL_error(L, "stored data is damaged (unknown tag)");
    }
}

typedef struct {
    const char *data;
    size_t len;
    int config;  // 0: persisted entries; 1: config values
    int replace;  // 1: entries replace what the state holds (nil: remove), counted as they go
} load_args;

static int load_entries(lua_State *L) {
    load_args *a = lua_touserdata(L, 1);
    lx_runtime *rt = lx_runtime_of(L);
    reader r = {(const unsigned char *)a->data, (const unsigned char *)a->data + a->len};
    lua_settop(L, 0);
    if (a->config) {
        push_registry(L, C_VALUES);
    } else {
        push_registry(L, P_ROOT);
        push_backing(L, 1);
        lua_remove(L, 1);
    }
    size_t count = (size_t)read_u(L, &r, 4);
    for (size_t i = 0; i < count; i++) {
        read_value(L, &r, 0, 0);  // the key
        int key = lua_gettop(L);
        read_value(L, &r, key, 0);
        if (a->config) {
            // What was saved loads whatever its size (an earlier release had no cap); it counts.
            lua_pushvalue(L, key);
            lua_rawget(L, 1);
            size_t old = config_entry_size(L, key, -1), now = config_entry_size(L, key, -2);
            lua_pop(L, 1);
            rt->config_bytes = (rt->config_bytes > old ? rt->config_bytes - old : 0) + now;
        } else {
            if (a->replace) {
                lua_pushvalue(L, key);
                if (lua_rawget(L, 1) != LUA_TNIL) {
                    size_t old = scalar_size(L, key) + stored_size(L, -1);
                    rt->persist_bytes = rt->persist_bytes > old ? rt->persist_bytes - old : 0;
                }
                lua_pop(L, 1);
            }
            if (!lua_isnil(L, -1)) rt->persist_bytes += scalar_size(L, key) + stored_size(L, -1);
        }
        lua_rawset(L, 1);
    }
    return 0;
}

int lx_load_saved(lx_runtime *rt, int config, const char *data, size_t len) {
    lua_State *L = rt->L;
    load_args a = {data, len, config, 0};
    lua_pushcfunction(L, load_entries);
    lua_pushlightuserdata(L, &a);
    return lx_host_status(rt, lx_host_pcall(rt, 1));
}

int lx_restore_saved(lx_runtime *rt, int config, const char *data, size_t len) {
    lua_State *L = rt->L;
    load_args a = {data, len, config, 1};
    lua_pushcfunction(L, load_entries);
    lua_pushlightuserdata(L, &a);
    return lx_host_status(rt, lx_host_pcall(rt, 1));
}

size_t lx_persisted_bytes(const lx_runtime *rt) { return rt->persist_bytes; }
void lx_set_persist_limit(lx_runtime *rt, size_t bytes) {
    rt->persist_limit = bytes;
    // The changes' encoding holds at most every value of persisted, the config store (1 MiB)
    // and the changed keys (LX_CHANGED_MAX): room for all of them, whatever the limit.
    size_t room = bytes + LX_CONFIG_TOTAL_MAX + LX_CHANGED_MAX + ((size_t)1 << 20);
    rt->changes.max = room > ((size_t)64 << 20) ? room : ((size_t)64 << 20);
}

// MARK: - config

static void check_path(lua_State *L, const char *fname, int idx) {
    size_t n;
    const char *s = luaL_checklstring(L, idx, &n);
    int ok = n > 0 && n <= LX_CONFIG_PATH_MAX && s[0] != '.' && s[n - 1] != '.';
    for (size_t i = 0; ok && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
            || c == '-' || c == '/';
    }
    // No part between slashes empty, "." or "..": the admin API's URL names a path, and the
    // web server resolves such parts (StateStore.swift's isValidPath says the same).
    for (size_t start = 0; ok && start <= n;) {
        size_t end = start;
        while (end < n && s[end] != '/') end++;
        size_t part = end - start;
        ok = part > 0 && !(part == 1 && s[start] == '.') && !(part == 2 && s[start] == '.' && s[start + 1] == '.');
        start = end + 1;
    }
    if (!ok)
        luaL_error(L,
            "%s: bad path '%s': use 1 to 256 letters, digits, '.', '_', '-' and '/', not starting or ending with '.', "
            "with no part between slashes empty, '.' or '..'",
            fname, s);
}

static int config_get(lua_State *L) {
    check_path(L, "config.get", 1);
    push_registry(L, C_VALUES);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    return 1;
}

// Sets path (1) to value (2), queueing the functions registered for it when the value changes.
// `changed_by_chunk`: mark it for the host to commit (a change that came from the database is
// there already).
static int set_config(lua_State *L, int changed_by_chunk) {
    lua_settop(L, 2);
    int t = lua_type(L, 2);
    if (t != LUA_TNIL && t != LUA_TBOOLEAN && t != LUA_TNUMBER && t != LUA_TSTRING)
        return luaL_error(L, "config.set: values are strings, numbers and booleans, not %s", luaL_typename(L, 2));
    push_registry(L, C_VALUES);  // 3
    lua_pushvalue(L, 1);
    lua_rawget(L, 3);  // 4: the old value
    // 1 and 1.0 are equal in Lua but not the same value to store.
    int same = lua_rawequal(L, 2, 4) && lua_type(L, 2) == lua_type(L, 4)
        && (lua_type(L, 2) != LUA_TNUMBER || lua_isinteger(L, 2) == lua_isinteger(L, 4));
    if (same) return 0;
    lx_runtime *rt = lx_runtime_of(L);
    if (t == LUA_TSTRING && lua_rawlen(L, 2) > LX_CONFIG_VALUE_MAX)
        return luaL_error(L, "config.set: a value is at most %I bytes; this one is %I (keep data in persisted)",
            (lua_Integer)LX_CONFIG_VALUE_MAX, (lua_Integer)lua_rawlen(L, 2));
    size_t old_size = config_entry_size(L, 1, 4), new_size = config_entry_size(L, 1, 2);
    if (new_size > old_size && rt->config_bytes - old_size + new_size > LX_CONFIG_TOTAL_MAX)
        return luaL_error(L, "config.set: the config store holds at most %I bytes (%I in use); this would make it %I",
            (lua_Integer)LX_CONFIG_TOTAL_MAX, (lua_Integer)rt->config_bytes,
            (lua_Integer)(rt->config_bytes - old_size + new_size));
    if (changed_by_chunk) {
        push_registry(L, C_CHANGED);
        lua_pushvalue(L, 1);
        if (lua_rawget(L, -2) == LUA_TNIL) charge_changed(L, "config.set", scalar_size(L, 1) + 1);
        lua_pop(L, 2);
    }
    // Everything that allocates first, then the stores that cannot fail halfway.
    push_registry(L, C_QUEUE);  // 5
    push_registry(L, C_CALLBACKS);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);  // 7: the functions for the path
    lua_Integer queued = (lua_Integer)lua_rawlen(L, 5);
    if (lua_istable(L, 7)) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, 7);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_createtable(L, 2, 0);
            lua_rawgeti(L, 7, i);
            lua_rawseti(L, -2, 1);
            lua_pushvalue(L, 1);
            lua_rawseti(L, -2, 2);
            lua_rawseti(L, 5, ++queued);
        }
    }
    if (queued > 0) rt->config_queued = 1;
    if (changed_by_chunk) {
        push_registry(L, C_CHANGED);
        lua_pushvalue(L, 1);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
        lua_pop(L, 1);
        rt->config_dirty = 1;
    }
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_rawset(L, 3);
    rt->config_bytes = rt->config_bytes - old_size + new_size;
    return 0;
}

static int config_set(lua_State *L) {
    check_path(L, "config.set", 1);
    return set_config(L, 1);
}

static int config_register(lua_State *L) {
    lx_refuse_in_finalizer(L, "config.register");
    check_path(L, "config.register", 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    // During a stored script's run, the functions it registers (again) are its own; outside
    // it, those its timers' callbacks and its handlers register (lx_set_config_owner).
    lx_runtime *rt = lx_runtime_of(L);
    if (lua_getfield(L, LUA_REGISTRYINDEX, C_TOUCHED) == LUA_TTABLE) {
        lua_pushvalue(L, 2);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    } else if (rt->has_config_owner) {
        push_registry(L, C_OWNERS);
        lua_pushvalue(L, 2);
        lua_pushlstring(L, rt->config_owner.data, rt->config_owner.len);
        lua_rawset(L, -3);
    }
    lua_settop(L, 2);
    push_registry(L, C_CALLBACKS);  // 3
    lua_pushvalue(L, 1);
    if (lua_rawget(L, 3) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_newtable(L);
        lua_pushvalue(L, 1);
        lua_pushvalue(L, -2);
        lua_rawset(L, 3);
    }
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, -1, i);
        int present = lua_rawequal(L, -1, 2);
        lua_pop(L, 1);
        if (present) return 0;
    }
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, n + 1);
    return 0;
}

static int config_unregister(lua_State *L) {
    lx_refuse_in_finalizer(L, "config.unregister");
    check_path(L, "config.unregister", 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    push_registry(L, C_CALLBACKS);
    lua_pushvalue(L, 1);
    if (lua_rawget(L, -2) != LUA_TTABLE) {
        lua_pushboolean(L, 0);
        return 1;
    }
    int list = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, list);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, list, i);
        int found = lua_rawequal(L, -1, 2);
        lua_pop(L, 1);
        if (!found) continue;
        for (lua_Integer j = i; j < n; j++) {
            lua_rawgeti(L, list, j + 1);
            lua_rawseti(L, list, j);
        }
        lua_pushnil(L);
        lua_rawseti(L, list, n);
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    return 1;
}

// MARK: - Config callbacks of stored scripts (SPEC V8)

// Protected: keeps a copy of the callbacks (each path's list copied) and starts noting the
// functions registered from now on.
static int save_callbacks(lua_State *L) {
    lua_settop(L, 0);
    push_registry(L, C_CALLBACKS);  // 1
    lua_newtable(L);                // 2: the copy
    lua_pushnil(L);
    while (lua_next(L, 1)) {  // path, list
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        lua_createtable(L, (int)n, 0);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -2, i);
            lua_rawseti(L, -2, i);
        }
        lua_pushvalue(L, -3);
        lua_insert(L, -2);
        lua_rawset(L, 2);  // copy[path] = list's copy
        lua_pop(L, 1);
    }
    lua_setfield(L, LUA_REGISTRYINDEX, C_SAVED);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, C_TOUCHED);
    return 0;
}

// Removes from every path's list the functions `drop` (a function: fn -> boolean, at index 1)
// answers true for, keeping the order of the others.
static void remove_callbacks(lua_State *L, int drop) {
    push_registry(L, C_CALLBACKS);
    int callbacks = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, callbacks)) {  // path, list
        int list = lua_gettop(L);
        lua_Integer n = (lua_Integer)lua_rawlen(L, list), kept = 0;
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, list, i);
            lua_pushvalue(L, drop);
            lua_pushvalue(L, -2);
            lua_call(L, 1, 1);
            int dropped = lua_toboolean(L, -1);
            lua_pop(L, 1);
            if (dropped) {
                lua_pop(L, 1);
            } else {
                lua_rawseti(L, list, ++kept);
            }
        }
        for (lua_Integer i = kept + 1; i <= n; i++) {
            lua_pushnil(L);
            lua_rawseti(L, list, i);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

// Upvalue 1: the owner's name; 2: the saved copy's functions (fn -> true), or nil for all.
// True for a function the owner registered in an earlier run, and (with 2) held before this one,
// and not registered again in it.
static int owned_before(lua_State *L) {
    push_registry(L, C_OWNERS);
    lua_pushvalue(L, 1);
    lua_rawget(L, -2);
    if (!lua_rawequal(L, -1, lua_upvalueindex(1))) {
        lua_pushboolean(L, 0);
        return 1;
    }
    if (lua_isnil(L, lua_upvalueindex(2))) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushvalue(L, 1);
    int held = lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL;
    lua_getfield(L, LUA_REGISTRYINDEX, C_TOUCHED);
    int again = lua_istable(L, -1) && (lua_pushvalue(L, 1), lua_rawget(L, -2) != LUA_TNIL);
    lua_pushboolean(L, held && !again);
    return 1;
}

// Protected: args 1 keep (boolean), 2 the owner's name. Ends what save_callbacks began: without
// keep, the callbacks are the copy again; with it, the owner's functions from before the run
// that it did not register again go, and those it registered are its own from now on.
static int end_callbacks(lua_State *L) {
    int keep = lua_toboolean(L, 1);
    lua_settop(L, 2);
    if (!keep) {
        if (lua_getfield(L, LUA_REGISTRYINDEX, C_SAVED) == LUA_TTABLE) {
            lua_setfield(L, LUA_REGISTRYINDEX, C_CALLBACKS);
        }
    } else {
        // The functions the copy holds, as a set.
        lua_newtable(L);  // 3
        int held = 3;
        if (lua_getfield(L, LUA_REGISTRYINDEX, C_SAVED) == LUA_TTABLE) {  // 4
            lua_pushnil(L);
            while (lua_next(L, 4)) {
                lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
                for (lua_Integer i = 1; i <= n; i++) {
                    lua_rawgeti(L, -1, i);
                    lua_pushboolean(L, 1);
                    lua_rawset(L, held);
                }
                lua_pop(L, 1);
            }
        }
        lua_settop(L, 3);
        lua_pushvalue(L, 2);
        lua_pushvalue(L, held);
        lua_pushcclosure(L, owned_before, 2);  // 4
        remove_callbacks(L, 4);
        lua_settop(L, 2);
        push_registry(L, C_OWNERS);  // 3
        if (lua_getfield(L, LUA_REGISTRYINDEX, C_TOUCHED) == LUA_TTABLE) {  // 4
            lua_pushnil(L);
            while (lua_next(L, 4)) {
                lua_pop(L, 1);
                lua_pushvalue(L, -1);
                lua_pushvalue(L, 2);
                lua_rawset(L, 3);
            }
        }
    }
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, C_SAVED);
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, C_TOUCHED);
    return 0;
}

// Protected: arg 1 the owner's name. Removes every callback it registered.
static int withdraw_callbacks(lua_State *L) {
    lua_settop(L, 1);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    lua_pushcclosure(L, owned_before, 2);  // 2
    remove_callbacks(L, 2);
    return 0;
}

int lx_save_config_callbacks(lx_runtime *rt) {
    lua_pushcfunction(rt->L, save_callbacks);
    return lx_host_status(rt, lx_host_pcall(rt, 0));
}

// Pushing the name may allocate: it is pushed inside the protected call.
typedef struct {
    int keep;  // 1 keep, 0 put the copy back, -1 withdraw all of owner's
    const char *owner;
    size_t owner_len;
} callbacks_end;

static int end_callbacks_with(lua_State *L) {
    callbacks_end *end = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (end->keep < 0) {
        lua_pushlstring(L, end->owner, end->owner_len);
        return withdraw_callbacks(L);
    }
    lua_pushboolean(L, end->keep);
    lua_pushlstring(L, end->owner, end->owner_len);
    return end_callbacks(L);
}

int lx_end_config_callbacks(lx_runtime *rt, int keep, const char *owner, size_t owner_len) {
    callbacks_end end = {.keep = keep != 0, .owner = owner, .owner_len = owner_len};
    lua_pushcfunction(rt->L, end_callbacks_with);
    lua_pushlightuserdata(rt->L, &end);
    return lx_host_status(rt, lx_host_pcall(rt, 1));
}

int lx_set_config_owner(lx_runtime *rt, const char *owner, size_t owner_len) {
    rt->has_config_owner = 0;
    rt->config_owner.len = 0;
    if (owner == NULL) return LX_OK;
    if (!lx_buf_add(&rt->config_owner, owner, owner_len)) return LX_ERR_MEMORY;
    rt->has_config_owner = 1;
    return LX_OK;
}

int lx_withdraw_config_callbacks(lx_runtime *rt, const char *owner, size_t owner_len) {
    callbacks_end end = {.keep = -1, .owner = owner, .owner_len = owner_len};
    lua_pushcfunction(rt->L, end_callbacks_with);
    lua_pushlightuserdata(rt->L, &end);
    return lx_host_status(rt, lx_host_pcall(rt, 1));
}

// A change from outside the state (the CLI, the admin API): path and value are args 1 and 2.
static int apply_config(lua_State *L) {
    const char **path = lua_touserdata(L, 1);
    size_t *path_len = lua_touserdata(L, 2);
    load_args *value = lua_touserdata(L, 3);
    int from_chunk = (int)lua_tointeger(L, 4);
    lua_settop(L, 0);
    lua_pushlstring(L, *path, *path_len);
    reader r = {(const unsigned char *)value->data, (const unsigned char *)value->data + value->len};
    read_value(L, &r, 1, 0);
    return set_config(L, from_chunk);
}

int lx_apply_config(lx_runtime *rt, const char *path, size_t path_len, const char *value, size_t value_len,
    int commit) {
    lua_State *L = rt->L;
    load_args v = {value, value_len, 1, 0};
    lua_pushcfunction(L, apply_config);
    lua_pushlightuserdata(L, &path);
    lua_pushlightuserdata(L, &path_len);
    lua_pushlightuserdata(L, &v);
    lua_pushinteger(L, commit);
    return lx_host_status(rt, lx_host_pcall(rt, 4));
}

// Moves the next queued callback into C_CALL; returns its path's length (0: none queued).
static int next_call(lua_State *L) {
    push_registry(L, C_QUEUE);
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    lx_runtime_of(L)->config_queued = n > 1;
    if (n == 0) {
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, C_CALL);
        return 0;
    }
    lua_rawgeti(L, -1, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, C_CALL);
    for (lua_Integer i = 1; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        lua_rawseti(L, -2, i);
    }
    lua_pushnil(L);
    lua_rawseti(L, -2, n);
    return 0;
}

int lx_next_config_call(lx_runtime *rt, const char **path, size_t *path_len) {
    lua_State *L = rt->L;
    *path = NULL;
    *path_len = 0;
    // After every job: without a queued callback, no call into the state at all.
    if (!rt->config_queued) return 0;
    lua_pushcfunction(L, next_call);
    if (lx_host_pcall(rt, 0) != LUA_OK) {
        lua_pop(L, 1);
        return 0;
    }
    if (lua_getfield(L, LUA_REGISTRYINDEX, C_CALL) != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    lua_rawgeti(L, -1, 2);
    // The path string stays referenced by C_CALL until the next call, so the pointer stays valid.
    *path = lua_tolstring(L, -1, path_len);
    lua_pop(L, 2);
    return 1;
}

void lx_drop_config_calls(lx_runtime *rt) {
    lua_State *L = rt->L;
    rt->config_queued = 0;
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, C_CALL);
    if (lua_getfield(L, LUA_REGISTRYINDEX, C_QUEUE) == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = n; i >= 1; i--) {
            lua_pushnil(L);
            lua_rawseti(L, -2, i);
        }
    }
    lua_pop(L, 1);
}

int lx_push_config_call(lua_State *L) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, C_CALL) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_rawgeti(L, -1, 1);
    lua_remove(L, -2);
    return lua_type(L, -1);
}

// MARK: - Setup

// The base library's rawset, but for the tables of `persisted`: on one of those it wrote into the
// empty proxy itself, which reads then found before __index, so the value was served and never
// saved (SPEC V6). Refused there, as setmetatable is.
static int p_rawset(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checkany(L, 2);
    luaL_checkany(L, 3);
    lua_settop(L, 3);
    if (push_backing(L, 1)) {
        lua_pushliteral(L, "persisted: rawset cannot store into persisted (its tables are proxies): assign instead");
        return raise_here(L);
    }
    lua_pop(L, 1);
    lua_rawset(L, 1);
    return 1;
}

void lx_open_persist(lua_State *L) {
    int base = lua_gettop(L);
    weak_keyed_table(L, P_BACKING);
    weak_keyed_table(L, P_TOP);
    weak_keyed_table(L, P_DEPTH);
    weak_keyed_table(L, P_DETACHED);
    lua_newtable(L);
    lua_setfield(L, LUA_REGISTRYINDEX, P_DIRTY);
    static const luaL_Reg meta[] = {
        {"__index", p_index}, {"__newindex", p_newindex}, {"__pairs", p_pairs}, {"__len", p_len}, {NULL, NULL},
    };
    luaL_newmetatable(L, P_META);
    luaL_setfuncs(L, meta, 0);
    lua_pushliteral(L, "persisted");
    lua_setfield(L, -2, "__name");
    // getmetatable(persisted) answers this; setmetatable(persisted, ...) is refused.
    lua_pushliteral(L, "persisted");
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
    lua_pushnil(L);  // the root has no top-level key
    int backing;
    new_proxy(L, lua_gettop(L), -1, &backing);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, P_ROOT);
    lua_setglobal(L, "persisted");
    if (lua_getglobal(L, "rawset") != LUA_TNIL) {
        lua_pushcfunction(L, p_rawset);
        lua_setglobal(L, "rawset");
    }
    lua_pop(L, 1);
    lua_settop(L, base);
    (void)backing;
    lua_newtable(L);
    lua_setglobal(L, "shared");

    for (const char *const *key = (const char *const[]){C_VALUES, C_CALLBACKS, C_CHANGED, C_QUEUE, NULL}; *key; key++) {
        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, *key);
    }
    lua_newtable(L);  // C_OWNERS: a function no path holds any more is let go
    lua_newtable(L);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, C_OWNERS);
    static const luaL_Reg functions[] = {
        {"get", config_get}, {"set", config_set}, {"register", config_register}, {"unregister", config_unregister},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    lua_setglobal(L, "config");
}
