// The `http` module (SPEC V4, V7): scripts give themselves URLs.
//
//   http.listen(name, fn)          fn(url, body, headers, request) answers /api/v1/exec/<name>
//   http.action(name, fn, spec)    fn(params...) answers /api/v1/exec/command?action=<name>
//   http.stop_listen(handle|name)  http.stop_action(handle|name)
//
// The functions live in the Lua registry, one table per kind: name -> {fn, id}. Replacing a
// name is one rawset of a new entry, so no request ever sees half a registration (and the state
// runs one request at a time anyway). The host (LuaRuntime's EndpointRegistry) is told of each
// change, with where it was made, for the admin listing; it never calls back into the state.
// Argument errors are raised here, in C: Swift frames never see a longjmp.
//
// Before a stored script runs (SPEC V8), the host keeps a copy of both tables
// (lx_save_registrations); a version whose run fails gets them back whole
// (lx_restore_registrations), and one that succeeds has what its previous version registered,
// and it did not, withdrawn by name (lx_withdraw).
//
// CLuaSupport, layer 5 of 6, beside persist.c and log.c. Includes http.h, stop.h and eval.h (the
// host's own protected calls only): lx_invoke reaches lx_push_registered through state.c; knows
// nothing of `config`
// (state.c hands config callbacks to persist.c). Layers, lowest first: codec, stop, baselib,
// eval, then persist/http/log side by side, then state (docs/architecture.md).

#include "http.h"

#include "eval.h"
#include "stop.h"

#include <string.h>

#define LX_HANDLE "luaexec.http.handle"

static const char *const table_keys[] = {"luaexec.http.endpoints", "luaexec.http.actions"};
// The copies lx_save_registrations keeps until lx_restore_registrations or lx_forget_saved_registrations.
static const char *const saved_keys[] = {"luaexec.http.saved.endpoints", "luaexec.http.saved.actions"};
static const char *const kind_names[] = {"endpoint", "action"};
static const char *const param_types[] = {"string", "integer", "number", "boolean", NULL};

typedef struct {
    int kind;
    lua_Integer id;
} lx_handle;  // user value 1: the name

static int is_name_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_'
        || c == '~' || c == '-';
}

// Names are URL path segments and query values, so a safe subset of both: RFC 3986's unreserved
// characters, 1 to 128 bytes, never "." or "..". AccessControl's Scope checks `endpoint:NAME`
// and `action:NAME` with the same rule.
static const char *name_problem(const char *s, size_t n, int kind) {
    if (n == 0) return "it is empty";
    if (n > 128) return "it is longer than 128 bytes";
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) return "'.' and '..' are not names";
    for (size_t i = 0; i < n; i++)
        if (!is_name_byte((unsigned char)s[i])) return "use letters, digits, '.', '_', '~' and '-' only";
    // The URLs the route table serves itself under the exec prefix (ExecService.routes; the
    // test ExecServiceTests.reservedEndpointNames keeps the two lists the same).
    if (kind == LX_KIND_ENDPOINT && ((n == 15 && memcmp(s, "interactive.lua", 15) == 0) || (n == 7 && memcmp(s, "command", 7) == 0)))
        return "luaexec serves that URL itself";
    return NULL;
}

static void check_name(lua_State *L, const char *fname, const char *s, size_t n, int kind) {
    const char *problem = name_problem(s, n, kind);
    if (problem) luaL_error(L, "%s: bad %s name '%s': %s", fname, kind_names[kind], s, problem);
}

// Action parameters arrive as query parameters and become Lua arguments.
static int is_param_name(const char *s, size_t n) {
    if (n == 0 || n > 64 || (s[0] >= '0' && s[0] <= '9')) return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_')) return 0;
    }
    return strcmp(s, "action") != 0 && strcmp(s, "help") != 0 && strcmp(s, "AuthToken") != 0;
}

// Reads http.action's third argument: leaves its help text (or nil) and its parameters, one
// "name\ttype\t0|1\n" line each, on the stack.
static void read_action_spec(lua_State *L, int spec) {
    lua_pushnil(L);
    lua_pushliteral(L, "");
    int help = lua_gettop(L) - 1, params = help + 1;
    if (lua_isnoneornil(L, spec)) return;
    if (!lua_istable(L, spec)) luaL_error(L, "http.action: the third argument must be a table {help = ..., params = {...}}");
    if (lua_getfield(L, spec, "help") != LUA_TNIL) {
        if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "http.action: help must be a string");
        lua_replace(L, help);
    } else {
        lua_pop(L, 1);
    }
    if (lua_getfield(L, spec, "params") == LUA_TNIL) {
        lua_pop(L, 1);
        return;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "http.action: params must be a list of {name = ..., type = ...}");
    int list = lua_gettop(L);
    lua_newtable(L);  // names seen
    int seen = lua_gettop(L);
    lua_Integer count = luaL_len(L, list);
    for (lua_Integer i = 1; i <= count; i++) {
        if (lua_geti(L, list, i) != LUA_TTABLE) luaL_error(L, "http.action: params[%I] must be a table", i);
        int item = lua_gettop(L);
        size_t n;
        const char *name = lua_getfield(L, item, "name") == LUA_TSTRING ? lua_tolstring(L, -1, &n) : NULL;
        if (!name || !is_param_name(name, n))
            luaL_error(L,
                "http.action: params[%I].name must be a word of letters, digits and '_' (not action, help or "
                "AuthToken)",
                i);
        lua_pushvalue(L, -1);
        if (lua_rawget(L, seen) != LUA_TNIL) luaL_error(L, "http.action: parameter '%s' is listed twice", name);
        lua_pop(L, 1);
        lua_pushvalue(L, -1);
        lua_pushboolean(L, 1);
        lua_rawset(L, seen);
        const char *type = lua_getfield(L, item, "type") == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int known = 0;
        for (const char *const *t = param_types; type && *t; t++) known |= strcmp(type, *t) == 0;
        if (!known)
            luaL_error(L, "http.action: parameter '%s' needs a type: string, integer, number or boolean", name);
        lua_getfield(L, item, "optional");
        int optional = lua_toboolean(L, -1);
        lua_pushvalue(L, params);
        lua_pushfstring(L, "%s\t%s\t%d\n", name, type, optional);
        lua_concat(L, 2);
        lua_replace(L, params);
        lua_settop(L, seen);
    }
    lua_settop(L, params);
}

static void notify(lx_runtime *rt, const lx_registration *registration) {
    if (rt->registration_hook) rt->registration_hook(rt->registration_context, registration);
}

static int handle_index(lua_State *L) {
    lx_handle *h = luaL_checkudata(L, 1, LX_HANDLE);
    const char *key = luaL_checkstring(L, 2);
    if (strcmp(key, "name") == 0) lua_getiuservalue(L, 1, 1);
    else if (strcmp(key, "kind") == 0) lua_pushstring(L, kind_names[h->kind]);
    else lua_pushnil(L);
    return 1;
}

static int handle_tostring(lua_State *L) {
    lx_handle *h = luaL_checkudata(L, 1, LX_HANDLE);
    lua_getiuservalue(L, 1, 1);
    lua_pushfstring(L, "http %s '%s'", kind_names[h->kind], lua_tostring(L, -1));
    return 1;
}

// Whether the registration at `entry` ({function, id, own work}) was made by the box's own
// work: its name counts in registration_counts[1], a request's in [0].
static int by_own_work(lua_State *L, int entry) {
    lua_rawgeti(L, entry, 3);
    int own = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return own;
}

static int register_function(lua_State *L, int kind) {
    const char *fname = kind == LX_KIND_ENDPOINT ? "http.listen" : "http.action";
    lx_refuse_in_finalizer(L, fname);
    size_t name_len;
    const char *name = luaL_checklstring(L, 1, &name_len);
    check_name(L, fname, name, name_len, kind);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lx_runtime *rt = lx_runtime_of(L);
    lua_settop(L, 3);  // the spec (actions) is 3, whatever else was passed
    if (kind == LX_KIND_ACTION) {
        read_action_spec(L, 3);
    } else {
        lua_pushnil(L);
        lua_pushliteral(L, "");
    }
    int params_index = lua_gettop(L), help_index = params_index - 1;

    lua_Debug ar;
    memset(&ar, 0, sizeof ar);
    if (!lua_getstack(L, 1, &ar) || !lua_getinfo(L, "Sl", &ar)) ar.source = "=?";

    // A new name counts against limits.endpoints, in the count of whoever registers it (requests,
    // or the box's own work); one registered already is replaced, and moves to this count if it
    // was in the other.
    int own = rt->own_work ? 1 : 0;
    lua_getfield(L, LUA_REGISTRYINDEX, table_keys[kind]);
    lua_pushvalue(L, 1);
    int replaces = lua_rawget(L, -2) == LUA_TTABLE;
    int previous = replaces ? by_own_work(L, lua_gettop(L)) : 0;
    lua_settop(L, params_index);
    int counted = !replaces || previous != own;
    if (counted && rt->registration_counts[own] >= rt->registration_limit)
        return luaL_error(L,
            "%s: too many endpoints and actions: %d are registered%s, the most limits.endpoints allows; remove some "
            "first (http.stop_listen, http.stop_action)",
            fname, rt->registration_counts[own], own ? " by the box's own scripts" : "");

    // Everything that may fail (allocations) happens before the one rawset that registers.
    lua_Integer id = ++rt->registration_serial;
    lx_handle *h = lua_newuserdatauv(L, sizeof(lx_handle), 1);
    h->kind = kind;
    h->id = id;
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, LX_HANDLE);
    int handle = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, table_keys[kind]);
    lua_pushvalue(L, 1);
    lua_createtable(L, 3, 0);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 1);
    lua_pushinteger(L, id);
    lua_rawseti(L, -2, 2);
    lua_pushboolean(L, own);
    lua_rawseti(L, -2, 3);
    lua_rawset(L, -3);
    if (counted) {
        rt->registration_counts[own]++;
        if (replaces) rt->registration_counts[previous]--;
    }

    size_t params_len, help_len = 0;
    const char *params_text = lua_tolstring(L, params_index, &params_len);
    const char *help = lua_isnil(L, help_index) ? NULL : lua_tolstring(L, help_index, &help_len);
    lx_registration registration = {
        .kind = kind, .removed = 0, .name = name, .name_len = name_len, .source = ar.source,
        .line = ar.currentline, .help = help, .help_len = help_len, .params = params_text,
        .params_len = params_len,
    };
    notify(rt, &registration);
    lua_pushvalue(L, handle);
    return 1;
}

static int unregister_function(lua_State *L, int kind) {
    lx_refuse_in_finalizer(L, kind == LX_KIND_ENDPOINT ? "http.stop_listen" : "http.stop_action");
    lx_handle *h = luaL_testudata(L, 1, LX_HANDLE);
    if (h) {
        if (h->kind != kind)
            luaL_error(L, "%s: this handle is for an %s", kind == LX_KIND_ENDPOINT ? "http.stop_listen" : "http.stop_action",
                kind_names[h->kind]);
        lua_getiuservalue(L, 1, 1);
    } else {
        luaL_argexpected(L, lua_type(L, 1) == LUA_TSTRING, 1, "handle or name");
        lua_pushvalue(L, 1);
    }
    int name_index = lua_gettop(L);
    lua_getfield(L, LUA_REGISTRYINDEX, table_keys[kind]);
    int table = lua_gettop(L);
    lua_pushvalue(L, name_index);
    int found = lua_rawget(L, table) == LUA_TTABLE;
    int entry = lua_gettop(L);
    // A handle removes only its own registration, not one that has replaced it since.
    if (found && h) {
        lua_rawgeti(L, entry, 2);
        found = lua_tointeger(L, -1) == h->id;
    }
    if (found) {
        int own = by_own_work(L, entry);
        lua_pushvalue(L, name_index);
        lua_pushnil(L);
        lua_rawset(L, table);
        lx_runtime_of(L)->registration_counts[own]--;
        size_t name_len;
        const char *name = lua_tolstring(L, name_index, &name_len);
        lx_registration registration = {.kind = kind, .removed = 1, .name = name, .name_len = name_len, .source = ""};
        notify(lx_runtime_of(L), &registration);
    }
    lua_pushboolean(L, found);
    return 1;
}

static int http_listen(lua_State *L) { return register_function(L, LX_KIND_ENDPOINT); }
static int http_action(lua_State *L) { return register_function(L, LX_KIND_ACTION); }
static int http_stop_listen(lua_State *L) { return unregister_function(L, LX_KIND_ENDPOINT); }
static int http_stop_action(lua_State *L) { return unregister_function(L, LX_KIND_ACTION); }

void lx_open_http(lua_State *L) {
    for (int kind = 0; kind < 2; kind++) {
        lua_newtable(L);
        lua_setfield(L, LUA_REGISTRYINDEX, table_keys[kind]);
    }
    luaL_newmetatable(L, LX_HANDLE);
    lua_pushcfunction(L, handle_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, handle_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "http handle");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    static const luaL_Reg functions[] = {
        {"listen", http_listen},
        {"stop_listen", http_stop_listen},
        {"action", http_action},
        {"stop_action", http_stop_action},
        {NULL, NULL},
    };
    luaL_newlib(L, functions);
    lua_setglobal(L, "http");
}

int lx_push_registered(lua_State *L, int kind, const char *name, size_t name_len) {
    lua_getfield(L, LUA_REGISTRYINDEX, table_keys[kind]);
    lua_pushlstring(L, name, name_len);
    if (lua_rawget(L, -2) == LUA_TTABLE) lua_rawgeti(L, -1, 1);
    else lua_pushnil(L);
    lua_replace(L, -3);
    lua_pop(L, 1);
    return lua_type(L, -1);
}

void lx_set_registration_limit(lx_runtime *rt, int limit) { rt->registration_limit = limit; }

void lx_set_own_work(lx_runtime *rt, int own) { rt->own_work = own; }

void lx_set_registration_hook(lx_runtime *rt, lx_registration_hook hook, void *context) {
    rt->registration_hook = hook;
    rt->registration_context = context;
}

// MARK: - Saving and restoring the registrations (stored scripts, SPEC V8)

// Protected: copies each kind's table (name -> {fn, id}) to its saved key. The entries are the
// same tables: a registration replaces its name's entry with a new one and never changes one.
static int save_registrations(lua_State *L) {
    for (int kind = 0; kind < 2; kind++) {
        lua_getfield(L, LUA_REGISTRYINDEX, table_keys[kind]);
        lua_newtable(L);
        lua_pushnil(L);
        while (lua_next(L, -3)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, -4);
        }
        lua_setfield(L, LUA_REGISTRYINDEX, saved_keys[kind]);
        lua_pop(L, 1);
    }
    lx_runtime *rt = lx_runtime_of(L);
    rt->saved_registration_counts[0] = rt->registration_counts[0];
    rt->saved_registration_counts[1] = rt->registration_counts[1];
    return 0;
}

// Protected: with a true argument, the saved copies become the tables again; either way they
// are forgotten.
static int end_saved(lua_State *L) {
    int restore = lua_toboolean(L, 1);
    lx_runtime *rt = lx_runtime_of(L);
    if (restore) {
        rt->registration_counts[0] = rt->saved_registration_counts[0];
        rt->registration_counts[1] = rt->saved_registration_counts[1];
    }
    for (int kind = 0; kind < 2; kind++) {
        if (restore && lua_getfield(L, LUA_REGISTRYINDEX, saved_keys[kind]) == LUA_TTABLE) {
            lua_setfield(L, LUA_REGISTRYINDEX, table_keys[kind]);
        } else if (restore) {
            lua_pop(L, 1);
        }
        lua_pushnil(L);
        lua_setfield(L, LUA_REGISTRYINDEX, saved_keys[kind]);
    }
    return 0;
}

int lx_save_registrations(lx_runtime *rt) {
    lua_pushcfunction(rt->L, save_registrations);
    return lx_host_status(rt, lx_host_pcall(rt, 0));
}

int lx_restore_registrations(lx_runtime *rt) {
    lua_pushcfunction(rt->L, end_saved);
    lua_pushboolean(rt->L, 1);
    return lx_host_status(rt, lx_host_pcall(rt, 1));
}

int lx_forget_saved_registrations(lx_runtime *rt) {
    lua_pushcfunction(rt->L, end_saved);
    lua_pushboolean(rt->L, 0);
    return lx_host_status(rt, lx_host_pcall(rt, 1));
}

typedef struct {
    int kind;
    const char *name;
    size_t name_len;
    int found;
} withdrawal;

// Protected: http.stop_listen(name) or http.stop_action(name), the name pushed here (pushing it
// may allocate).
static int withdraw(lua_State *L) {
    withdrawal *w = lua_touserdata(L, 1);
    lua_settop(L, 0);
    lua_pushlstring(L, w->name, w->name_len);
    unregister_function(L, w->kind);
    w->found = lua_toboolean(L, -1);
    return 0;
}

int lx_withdraw(lx_runtime *rt, int kind, const char *name, size_t name_len) {
    if (kind != LX_KIND_ENDPOINT && kind != LX_KIND_ACTION) return LX_ERR_NOT_FOUND;
    withdrawal w = {.kind = kind, .name = name, .name_len = name_len, .found = 0};
    lua_pushcfunction(rt->L, withdraw);
    lua_pushlightuserdata(rt->L, &w);
    int status = lx_host_status(rt, lx_host_pcall(rt, 1));
    if (status != LX_OK) return status;
    return w.found ? LX_OK : LX_ERR_NOT_FOUND;
}
