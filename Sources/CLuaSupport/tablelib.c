// table.insert, table.remove, table.move, table.concat and table.sort, with the stop.
//
// liblua's table functions loop in C, where the stop hook never runs, and how long they loop is
// the caller's to choose: table.move({}, 1, 1e12, 2) moves a trillion nils (hours, allocating
// nothing); a length from __len makes table.insert(t, 1, v) and table.remove(t, 1) shift that
// many; table.concat with a C function as __index (table.concat itself answers "" for an empty
// table) adds empty strings for ever; table.sort of a fake length with a C comparator compares
// for hours. So these look at the stop (lx_check_stop) once per element, or per comparison.
//
// They follow Lua 5.4's ltablib.c (Copyright (C) 1994-2022 Lua.org, PUC-Rio; MIT licence),
// 5.4.4's code and messages, with the look added to each loop and to each comparison of sort.
// (They replace liblua's rather than wrap them: a C function that calls another names it '?' in
// an argument error.) TableLibraryTests compares answers and errors with the linked liblua's.
//
// CLuaSupport, layer 3 of 6, beside baselib.c and patterns.c. Includes baselib.h and stop.h.
// Layers, lowest first: codec, stop, baselib, eval, then persist/http/log side by side, then
// state (docs/architecture.md).

#include "baselib.h"

#include "stop.h"

#include <limits.h>
#include <string.h>
#include <time.h>

#define TAB_R 1
#define TAB_W 2
#define TAB_L 4
#define TAB_RW (TAB_R | TAB_W)

static int checkfield(lua_State *L, const char *key, int n) {
    lua_pushstring(L, key);
    return lua_rawget(L, -n) != LUA_TNIL;
}

// A table, or a value whose metatable has what `what` needs; else the usual argument error.
static void checktab(lua_State *L, int arg, int what) {
    if (lua_type(L, arg) != LUA_TTABLE) {
        int n = 1;
        if (lua_getmetatable(L, arg) && (!(what & TAB_R) || checkfield(L, "__index", ++n)) &&
            (!(what & TAB_W) || checkfield(L, "__newindex", ++n)) && (!(what & TAB_L) || checkfield(L, "__len", ++n))) {
            lua_pop(L, n);
        } else {
            luaL_checktype(L, arg, LUA_TTABLE);
        }
    }
}

static lua_Integer aux_getn(lua_State *L, int arg, int what) {
    checktab(L, arg, what | TAB_L);
    return luaL_len(L, arg);
}

static int tinsert(lua_State *L) {
    lua_Integer pos;
    lua_Integer e = aux_getn(L, 1, TAB_RW);
    e = luaL_intop(+, e, 1);  // the first empty element
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3: {
        pos = luaL_checkinteger(L, 2);
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        for (lua_Integer i = e; i > pos; i--) {
            lx_check_stop(L);
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    }
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int tremove(lua_State *L) {
    lua_Integer size = aux_getn(L, 1, TAB_RW);
    lua_Integer pos = luaL_optinteger(L, 2, size);
    // Argument 1, as liblua 5.4.4 names it.
    if (pos != size) luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 1, "position out of bounds");
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        lx_check_stop(L);
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

static int tmove(lua_State *L) {
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;  // the destination table
    checktab(L, 1, TAB_R);
    checktab(L, tt, TAB_W);
    if (e >= f) {
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
            for (lua_Integer i = 0; i < n; i++) {
                lx_check_stop(L);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        } else {
            for (lua_Integer i = n - 1; i >= 0; i--) {
                lx_check_stop(L);
                lua_geti(L, 1, f + i);
                lua_seti(L, tt, t + i);
            }
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

static void addfield(lua_State *L, luaL_Buffer *b, lua_Integer i) {
    lx_check_stop(L);
    lua_geti(L, 1, i);
    if (!lua_isstring(L, -1))
        luaL_error(L, "invalid value (%s) at index %I in table for 'concat'", luaL_typename(L, -1), (LUAI_UACINT)i);
    luaL_addvalue(b);
}

static int tconcat(lua_State *L) {
    luaL_Buffer b;
    lua_Integer last = aux_getn(L, 1, TAB_R);
    size_t lsep;
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    luaL_buffinit(L, &b);
    for (; i < last; i++) {
        addfield(L, &b, i);
        luaL_addlstring(&b, sep, lsep);
    }
    if (i == last) addfield(L, &b, i);
    luaL_pushresult(&b);
    return 1;
}

// MARK: - sort: ltablib.c's quicksort, the stop looked at before each comparison

typedef unsigned int IdxT;

// Past this many elements, a pivot is chosen at random when a partition was too imbalanced.
#define RANLIMIT 100u

// Something that differs from run to run (liblua's l_randomizePivot: the clock and the time).
static unsigned int randomize_pivot(void) {
    clock_t c = clock();
    time_t t = time(NULL);
    unsigned int buff[sizeof c / sizeof(unsigned int) + sizeof t / sizeof(unsigned int)];
    unsigned int rnd = 0;
    memcpy(buff, &c, sizeof c / sizeof(unsigned int) * sizeof(unsigned int));
    memcpy(buff + sizeof c / sizeof(unsigned int), &t, sizeof t / sizeof(unsigned int) * sizeof(unsigned int));
    for (size_t i = 0; i < sizeof buff / sizeof buff[0]; i++) rnd += buff[i];
    return rnd;
}

static void set2(lua_State *L, IdxT i, IdxT j) {
    lua_seti(L, 1, i);
    lua_seti(L, 1, j);
}

static int sort_comp(lua_State *L, int a, int b) {
    lx_check_stop(L);
    if (lua_isnil(L, 2)) return lua_compare(L, a, b, LUA_OPLT);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, a - 1);  // -1: the function
    lua_pushvalue(L, b - 2);  // -2: the function and a
    lua_call(L, 2, 1);
    int res = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return res;
}

static IdxT partition(lua_State *L, IdxT lo, IdxT up) {
    IdxT i = lo;  // incremented before its first use
    IdxT j = up - 1;  // decremented before its first use
    // Invariant: a[lo .. i] <= P <= a[j .. up], a[up - 1] == P
    for (;;) {
        while (lua_geti(L, 1, ++i), sort_comp(L, -1, -2)) {
            if (i == up - 1) luaL_error(L, "invalid order function for sorting");
            lua_pop(L, 1);
        }
        while (lua_geti(L, 1, --j), sort_comp(L, -3, -1)) {
            if (j < i) luaL_error(L, "invalid order function for sorting");
            lua_pop(L, 1);
        }
        if (j < i) {
            lua_pop(L, 1);
            set2(L, up - 1, i);
            return i;
        }
        set2(L, i, j);
    }
}

static IdxT choose_pivot(IdxT lo, IdxT up, unsigned int rnd) {
    IdxT r4 = (up - lo) / 4;
    return rnd % (r4 * 2) + (lo + r4);
}

static void auxsort(lua_State *L, IdxT lo, IdxT up, unsigned int rnd) {
    while (lo < up) {  // a loop for the tail call
        lua_geti(L, 1, lo);
        lua_geti(L, 1, up);
        if (sort_comp(L, -1, -2)) set2(L, lo, up);
        else lua_pop(L, 2);
        if (up - lo == 1) break;
        IdxT p = up - lo < RANLIMIT || rnd == 0 ? (lo + up) / 2 : choose_pivot(lo, up, rnd);
        lua_geti(L, 1, p);
        lua_geti(L, 1, lo);
        if (sort_comp(L, -2, -1)) {
            set2(L, p, lo);
        } else {
            lua_pop(L, 1);
            lua_geti(L, 1, up);
            if (sort_comp(L, -1, -2)) set2(L, p, up);
            else lua_pop(L, 2);
        }
        if (up - lo == 2) break;
        lua_geti(L, 1, p);  // the pivot
        lua_pushvalue(L, -1);
        lua_geti(L, 1, up - 1);
        set2(L, p, up - 1);
        p = partition(L, lo, up);
        IdxT n;
        if (p - lo < up - p) {
            auxsort(L, lo, p - 1, rnd);
            n = p - lo;
            lo = p + 1;
        } else {
            auxsort(L, p + 1, up, rnd);
            n = up - p;
            up = p - 1;
        }
        if ((up - lo) / 128 > n) rnd = randomize_pivot();  // too imbalanced: a new randomization
    }
}

static int tsort(lua_State *L) {
    lua_Integer n = aux_getn(L, 1, TAB_RW);
    if (n > 1) {
        luaL_argcheck(L, n < INT_MAX, 1, "array too big");
        if (!lua_isnoneornil(L, 2)) luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_settop(L, 2);
        auxsort(L, 1, (IdxT)n, 0);
    }
    return 0;
}

void lx_open_tablelib(lua_State *L) {
    lua_getglobal(L, "table");
    static const luaL_Reg functions[] = {
        {"insert", tinsert},
        {"remove", tremove},
        {"move", tmove},
        {"concat", tconcat},
        {"sort", tsort},
        {NULL, NULL},
    };
    luaL_setfuncs(L, functions, 0);
    lua_pop(L, 1);
}
