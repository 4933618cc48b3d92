// CLuaSupport, layer 1 of 6: the value codec. Byte buffers, the encoding of Lua values that
// LuaRuntime's decoder reads (lx_eval's results, persist.c's changes), and its decoding
// (lx_invoke's arguments, which Swift writes in the same format). Includes codec.h only: knows
// nothing of the runtime, the stop or evaluation. Layers, lowest first: codec, stop, baselib,
// eval, then persist/http/log side by side, then state (docs/architecture.md).

#include "codec.h"

#include <stdlib.h>
#include <string.h>

#define LX_MAX_DEPTH 32

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

void lx_buf_free(lx_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

// MARK: - Encoding

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
static void put(lua_State *L, lx_buf *b, const void *p, size_t n) { lx_put(L, b, p, n); }
static void put_tag(lua_State *L, lx_buf *b, char tag) { put(L, b, &tag, 1); }
static void put_u32(lua_State *L, lx_buf *b, size_t v) { lx_put_u32(L, b, v); }
static void put_bytes(lua_State *L, lx_buf *b, char tag, const char *s, size_t n) {
    put_tag(L, b, tag);
    put_u32(L, b, n);
    put(L, b, s, n);
}

// An integer as tostring writes it (LUA_INTEGER_FMT, "%lld"), straight into the buffer:
// luaL_tolstring formats it through lua_pushfstring and interns the string, ~1,100
// instructions of a `return 1+1` request. Only while numbers have no metatable:
// debug.setmetatable(0, ...) may give them a __tostring or __name, which luaL_tolstring honours.
static int put_integer_text(lua_State *L, lx_buf *b, char tag, int idx) {
    if (!lua_isinteger(L, idx)) return 0;
    if (lua_getmetatable(L, idx)) {
        lua_pop(L, 1);
        return 0;
    }
    lua_Integer value = lua_tointeger(L, idx);
    // The magnitude as unsigned, so that math.mininteger has one too.
    lua_Unsigned magnitude = value < 0 ? (lua_Unsigned)0 - (lua_Unsigned)value : (lua_Unsigned)value;
    char digits[24];
    char *end = digits + sizeof digits, *p = end;
    do {
        *--p = (char)('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (value < 0) *--p = '-';
    put_bytes(L, b, tag, p, (size_t)(end - p));
    return 1;
}

// tostring semantics (__tostring, __name) without calling the global `tostring`.
static void put_tostring(lua_State *L, lx_buf *b, char tag, int idx) {
    if (put_integer_text(L, b, tag, idx)) return;
    size_t n;
    const char *s = luaL_tolstring(L, idx, &n);
    put_bytes(L, b, tag, s, n);
    lua_pop(L, 1);
}

// At most this many values (a map's keys included) in a result's tree. The encoding's 64 MiB
// alone does not bound what the host makes of it: a table that refers to one sub-table 40,000
// times is encoded 40,000 times over, a byte a value, and decoded into as many values of the
// host's (gigabytes of them). A million values decode to tens of megabytes.
#define LX_RESULT_VALUES ((size_t)1 << 20)

static void count_value(lua_State *L, lx_buf *b, size_t *left) {
    if (*left == 0) {
        b->too_many = 1;
        luaL_error(L, "the results hold more than %I values (a table is counted each time it is referred to): return less, or fetch it in parts",
                   (lua_Integer)LX_RESULT_VALUES);
    }
    (*left)--;
}

static void encode(lua_State *L, lx_buf *b, int idx, int depth, int visiting, size_t *left);

static void encode_table(lua_State *L, lx_buf *b, int idx, int depth, int visiting, size_t *left) {
    if (depth > LX_MAX_DEPTH) return put_tag(L, b, 'D');
    luaL_checkstack(L, 6, "nested too deep");
    lua_pushvalue(L, idx);
    if (lua_rawget(L, visiting) != LUA_TNIL) {
        lua_pop(L, 1);
        return put_tag(L, b, 'c');
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
        put_tag(L, b, 'a');
        put_u32(L, b, count);
        for (lua_Integer i = 1; i <= max; i++) {
            lua_rawgeti(L, idx, i);
            encode(L, b, lua_gettop(L), depth + 1, visiting, left);
            lua_pop(L, 1);
        }
    } else {
        put_tag(L, b, 'm');
        put_u32(L, b, count);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            // Convert a copy of the key: converting it in place would confuse lua_next.
            lua_pushvalue(L, -2);
            count_value(L, b, left);
            put_tostring(L, b, 's', lua_gettop(L));
            lua_pop(L, 1);
            encode(L, b, lua_gettop(L), depth + 1, visiting, left);
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

static void encode(lua_State *L, lx_buf *b, int idx, int depth, int visiting, size_t *left) {
    count_value(L, b, left);
    if (lx_put_scalar(L, b, idx)) return;
    switch (lua_type(L, idx)) {
    case LUA_TTABLE:
        return encode_table(L, b, idx, depth, visiting, left);
    default:
        return put_tostring(L, b, 'o', idx);
    }
}


// The chunk's results (the whole stack) as the result encoding's u32 count and values: in text
// mode each non-nil value as tostring gives it, otherwise as typed trees.
void lx_encode_results(lua_State *L, lx_buf *b, int render_mode) {
    int n = lua_gettop(L);
    b->len = 0;
    b->too_many = 0;
    put_u32(L, b, (size_t)n);
    if (render_mode == LX_RENDER_TEXT) {
        for (int i = 1; i <= n; i++) {
            if (lua_isnil(L, i)) put_tag(L, b, 'n');
            else put_tostring(L, b, 's', i);
        }
        return;
    }
    lua_newtable(L);
    int visiting = lua_gettop(L);
    size_t left = LX_RESULT_VALUES;
    for (int i = 1; i <= n; i++) encode(L, b, i, 0, visiting, &left);
}

// MARK: - Decoding (lx_invoke's arguments, in the same format)

uint32_t lx_take_u32(lua_State *L, lx_decoder *v) {
    if (v->end - v->args < 4) luaL_error(L, "malformed arguments");
    uint32_t n = (uint32_t)v->args[0] | (uint32_t)v->args[1] << 8 | (uint32_t)v->args[2] << 16 | (uint32_t)v->args[3] << 24;
    v->args += 4;
    return n;
}

static uint64_t take_u64(lua_State *L, lx_decoder *v) {
    if (v->end - v->args < 8) luaL_error(L, "malformed arguments");
    uint64_t n = 0;
    for (int i = 0; i < 8; i++) n |= (uint64_t)v->args[i] << (8 * i);
    v->args += 8;
    return n;
}

// Pushes one value of lx_encode's format (the tags a host sends: n t f i d s a m).
void lx_push_decoded(lua_State *L, lx_decoder *v, int depth) {
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
        uint32_t n = lx_take_u32(L, v);
        if ((size_t)(v->end - v->args) < n) luaL_error(L, "malformed arguments");
        lua_pushlstring(L, (const char *)v->args, n);
        v->args += n;
        return;
    }
    case 'a': {
        uint32_t n = lx_take_u32(L, v);
        lua_createtable(L, (int)(n < 1024 ? n : 1024), 0);
        for (uint32_t i = 1; i <= n; i++) {
            lx_push_decoded(L, v, depth + 1);
            lua_rawseti(L, -2, i);
        }
        return;
    }
    case 'm': {
        uint32_t n = lx_take_u32(L, v);
        lua_createtable(L, 0, (int)(n < 1024 ? n : 1024));
        for (uint32_t i = 0; i < n; i++) {
            lx_push_decoded(L, v, depth + 1);
            lx_push_decoded(L, v, depth + 1);
            lua_rawset(L, -3);
        }
        return;
    }
    default:
        luaL_error(L, "malformed arguments");
    }
}

