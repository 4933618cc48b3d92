// CLuaSupport, layer 1 of 6: the value codec (codec.c). Includes only the public header and
// Lua's; knows nothing of the runtime. Layers, lowest first: codec, stop, baselib, eval, then
// persist/http/log side by side, then state (docs/architecture.md); a file includes only the
// headers of its own layer and of layers below it (scripts/check-c-layers.sh).
#ifndef CLUASUPPORT_CODEC_H
#define CLUASUPPORT_CODEC_H

#include "CLuaSupport.h"

#include <stdint.h>

#include <lua5.4/lauxlib.h>
#include <lua5.4/lua.h>

// A byte buffer, malloc'd outside the state's allocator and reused across evaluations.
typedef struct {
    char *data;
    size_t len, cap, max;
    // The error raised when an encoding would pass `max` (a format that may use it as %I).
    const char *full;
    // Set when a result's encoding stopped at its count of values (lx_encode_results).
    int too_many;
} lx_buf;

// Appends; 0 (nothing appended) when it would pass `max` or malloc fails.
int lx_buf_add(lx_buf *b, const void *p, size_t n);
// Copies as much as fits; used for error messages, which are truncated rather than lost.
void lx_buf_set_truncated(lx_buf *b, const char *p, size_t n);
void lx_buf_free(lx_buf *b);

// The value encoding of lx_encode_results, into any buffer; they raise b->full.
void lx_put(lua_State *L, lx_buf *b, const void *p, size_t n);
void lx_put_u32(lua_State *L, lx_buf *b, size_t v);
// Encodes a nil, boolean, number or string at idx and returns 1; anything else: 0, nothing put.
int lx_put_scalar(lua_State *L, lx_buf *b, int idx);
// Replaces `b` with the encoding of every value on the stack (render_mode: enum lx_render_mode).
// Raises (b->full, a __tostring's error): call it in protected mode.
void lx_encode_results(lua_State *L, lx_buf *b, int render_mode);

// Encoded values to read (lx_invoke's arguments): the next byte, and the end.
typedef struct {
    const unsigned char *args, *end;
} lx_decoder;

// Read one u32 / push one value; raise "malformed arguments" on anything they cannot read.
uint32_t lx_take_u32(lua_State *L, lx_decoder *v);
void lx_push_decoded(lua_State *L, lx_decoder *v, int depth);

#endif
