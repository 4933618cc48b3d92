// The `timer` module (SPEC V9): a function run later, in the state, between requests.
//
//   timer.after(seconds, fn)   runs fn once, `seconds` from now (0 or more)
//   timer.every(seconds, fn)   runs fn every `seconds` (LX_TIMER_FLOOR or more)
//   timer.cancel(handle)       true when the timer was set, false when it had run or was cancelled
//
// Here only the functions are kept (registry[LX_TIMERS_KEY][number] = fn) and the calls checked;
// the host keeps the schedule (told through rt->timer_hook), runs a due timer with lx_invoke
// (LX_KIND_TIMER, the number in decimal as the name), under the limits of a chunk, and forgets
// a timer.after that ran (lx_drop_timer).
//
// CLuaSupport, layer 5 of 6, beside persist.c, http.c and log.c. Includes timer.h, eval.h
// (lx_host_pcall) and stop.h.
// Layers, lowest first: codec, stop, baselib, eval, then persist/http/log/timer side by side,
// then state (docs/architecture.md).

#include "timer.h"

#include "eval.h"
#include "stop.h"

#include <stdlib.h>
#include <string.h>

#define LX_TIMERS_KEY "luaexec.timers"
// registry[LX_TIMERS_HELD_KEY][number] = fn: timers cancelled while rt->timer_holding.
#define LX_TIMERS_HELD_KEY "luaexec.timers.held"
#define LX_TIMER_HANDLE "luaexec.timer"
// The shortest interval of timer.every, and the longest delay or interval: a year.
#define LX_TIMER_FLOOR 0.01
#define LX_TIMER_MAX 31536000.0

// Pushes registry[LX_TIMERS_KEY], made if `create`; nil otherwise when there is none.
static int push_timers(lua_State *L, int create) {
    if (lua_getfield(L, LUA_REGISTRYINDEX, LX_TIMERS_KEY) == LUA_TTABLE) return 1;
    lua_pop(L, 1);
    if (!create) {
        lua_pushnil(L);
        return 0;
    }
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_setfield(L, LUA_REGISTRYINDEX, LX_TIMERS_KEY);
    return 1;
}

static int timer_set(lua_State *L, int every) {
    lx_refuse_in_finalizer(L, every ? "timer.every" : "timer.after");
    lx_runtime *rt = lx_runtime_of(L);
    lua_Number seconds = luaL_checknumber(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (every && !(seconds >= LX_TIMER_FLOOR && seconds <= LX_TIMER_MAX))
        return luaL_argerror(L, 1, "the interval must be 0.01 to 31536000 seconds");
    if (!every && !(seconds >= 0 && seconds <= LX_TIMER_MAX))
        return luaL_argerror(L, 1, "the delay must be 0 to 31536000 seconds");
    if (!rt->timer_hook) return luaL_error(L, "timers are not available in this state");
    if (rt->timer_count >= rt->timer_limit)
        return luaL_error(L, "too many timers: %d are set, the most limits.timers allows; cancel some first",
            rt->timer_count);
    // The handle first: once the timer is kept, nothing here may fail.
    lua_Integer *handle = lua_newuserdatauv(L, sizeof *handle, 0);
    luaL_setmetatable(L, LX_TIMER_HANDLE);
    push_timers(L, 1);
    lua_Integer id = rt->timer_serial + 1;
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, id);
    lua_pop(L, 1);
    rt->timer_serial = id;
    *handle = id;
    rt->timer_count++;
    lua_Debug ar;
    const char *source = "";
    int line = 0;
    if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
        source = ar.source;
        line = ar.currentline;
    }
    rt->timer_hook(rt->timer_context, (long long)id, 0, (double)seconds, every, source, line);
    return 1;
}

static int timer_after(lua_State *L) { return timer_set(L, 0); }
static int timer_every(lua_State *L) { return timer_set(L, 1); }

int lx_drop_timer(lx_runtime *rt, long long id) {
    lua_State *L = rt->L;
    int dropped = 0;
    if (push_timers(L, 0)) {
        if (lua_rawgeti(L, -1, (lua_Integer)id) != LUA_TNIL) {
            lua_pushnil(L);
            lua_rawseti(L, -3, (lua_Integer)id);
            rt->timer_count--;
            dropped = 1;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return dropped;
}

static int timer_cancel(lua_State *L) {
    lx_refuse_in_finalizer(L, "timer.cancel");
    lua_Integer id = *(lua_Integer *)luaL_checkudata(L, 1, LX_TIMER_HANDLE);
    lx_runtime *rt = lx_runtime_of(L);
    if (rt->timer_holding) {
        // Kept aside first (it allocates): a memory error leaves the timer as it was.
        if (push_timers(L, 0) && lua_rawgeti(L, -1, id) == LUA_TFUNCTION) {
            if (lua_getfield(L, LUA_REGISTRYINDEX, LX_TIMERS_HELD_KEY) != LUA_TTABLE) {
                lua_pop(L, 1);
                lua_newtable(L);
                lua_pushvalue(L, -1);
                lua_setfield(L, LUA_REGISTRYINDEX, LX_TIMERS_HELD_KEY);
            }
            lua_pushvalue(L, -2);
            lua_rawseti(L, -2, id);
        }
        lua_settop(L, 1);
    }
    int dropped = lx_drop_timer(rt, (long long)id);
    if (dropped && rt->timer_hook) rt->timer_hook(rt->timer_context, (long long)id, 1, 0, 0, "", 0);
    lua_pushboolean(L, dropped);
    return 1;
}

static int handle_tostring(lua_State *L) {
    lua_Integer id = *(lua_Integer *)luaL_checkudata(L, 1, LX_TIMER_HANDLE);
    lua_pushfstring(L, "timer %I", id);
    return 1;
}

int lx_push_timer(lua_State *L, const char *name, size_t name_len) {
    char digits[24];
    if (name_len == 0 || name_len >= sizeof digits) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    memcpy(digits, name, name_len);
    digits[name_len] = 0;
    long long id = strtoll(digits, NULL, 10);
    if (!push_timers(L, 0)) return LUA_TNIL;
    int type = lua_rawgeti(L, -1, (lua_Integer)id);
    lua_remove(L, -2);
    return type;
}

void lx_open_timer(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"after", timer_after},
        {"every", timer_every},
        {"cancel", timer_cancel},
        {NULL, NULL},
    };
    luaL_newmetatable(L, LX_TIMER_HANDLE);
    lua_pushcfunction(L, handle_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "timer");
    lua_setfield(L, -2, "__name");
    lua_pop(L, 1);
    luaL_newlib(L, functions);
    lua_setglobal(L, "timer");
}

void lx_hold_cancelled_timers(lx_runtime *rt, int hold) { rt->timer_holding = hold; }

// Protected: sets again the timer kept aside under the number at 1; *(int *) at 2 says whether
// there was one.
static int restore_timer(lua_State *L) {
    lua_Integer id = lua_tointeger(L, 1);
    int *restored = lua_touserdata(L, 2);
    if (lua_getfield(L, LUA_REGISTRYINDEX, LX_TIMERS_HELD_KEY) != LUA_TTABLE) return 0;
    if (lua_rawgeti(L, -1, id) != LUA_TFUNCTION) return 0;
    push_timers(L, 1);
    lua_pushvalue(L, -2);
    lua_rawseti(L, -2, id);
    lx_runtime_of(L)->timer_count++;
    *restored = 1;
    return 0;
}

int lx_restore_timer(lx_runtime *rt, long long id) {
    lua_State *L = rt->L;
    int restored = 0;
    lua_pushcfunction(L, restore_timer);
    lua_pushinteger(L, (lua_Integer)id);
    lua_pushlightuserdata(L, &restored);
    if (lx_host_pcall(rt, 2) != LUA_OK) {
        lua_pop(L, 1);
        return 0;
    }
    return restored;
}

// Protected: forgets the timers kept aside.
static int release_held(lua_State *L) {
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LX_TIMERS_HELD_KEY);
    return 0;
}

void lx_release_held_timers(lx_runtime *rt) {
    lua_State *L = rt->L;
    lua_pushcfunction(L, release_held);
    if (lx_host_pcall(rt, 0) != LUA_OK) lua_pop(L, 1);
}

void lx_set_timer_hook(lx_runtime *rt, lx_timer_hook hook, void *context, int limit) {
    rt->timer_hook = hook;
    rt->timer_context = context;
    rt->timer_limit = limit;
}
