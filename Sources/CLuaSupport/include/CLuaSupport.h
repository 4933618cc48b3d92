#ifndef CLUASUPPORT_H
#define CLUASUPPORT_H

// The C half of LuaRuntime: everything that may raise a Lua error (longjmp) lives here, so no
// Lua error ever unwinds through a Swift frame. Swift calls these functions and reads status
// codes; the only Lua entry points Swift uses directly are ones that cannot raise.

#include <stddef.h>
#include <stdint.h>

typedef struct lua_State lua_State;
typedef struct lx_runtime lx_runtime;

/// Why the running chunk must stop; set from any thread by lx_stop.
enum lx_stop_reason {
    LX_STOP_NONE = 0,
    LX_STOP_TIMEOUT = 1,
    LX_STOP_INTERRUPT = 2,
};

/// Outcome of lx_eval, beyond Lua's own status codes.
enum lx_status {
    LX_OK = 0,
    LX_ERR_SYNTAX = 1,
    LX_ERR_RUNTIME = 2,
    LX_ERR_MEMORY = 3,
    LX_ERR_TIMEOUT = 4,
    LX_ERR_INTERRUPTED = 5,
    LX_ERR_RENDER = 6,
};

/// How lx_eval encodes the chunk's results into the result buffer.
enum lx_render_mode {
    LX_RENDER_TEXT = 0,  // each value as luaL_tolstring gives it
    LX_RENDER_TREE = 1,  // a typed tree (see lx_encode in luasupport.c) for JSON
};

/// Creates a state with the standard libraries and luaexec's changes to them (print and
/// io.write captured, stdin empty, os.exit refused, text-only load). NULL if out of memory.
lx_runtime *lx_runtime_new(size_t memory_limit, size_t output_limit);
void lx_runtime_free(lx_runtime *rt);
lua_State *lx_runtime_state(lx_runtime *rt);

/// Bytes the state's allocator currently holds.
size_t lx_memory_in_use(const lx_runtime *rt);
/// Removes io, os.execute, package, require, debug, dofile and loadfile from the globals
/// (SPEC V1's restricted profile). Returns a Lua status; the state is unchanged on failure.
int lx_restrict(lx_runtime *rt);
/// Changes the memory cap; call it between evaluations, on the thread that owns the state.
void lx_set_memory_limit(lx_runtime *rt, size_t memory_limit);

/// Loads and runs `chunk` in the global environment, then encodes its results. On LX_OK the
/// result buffer holds the encoded values; otherwise the error buffer holds the message and
/// the traceback buffer a traceback when there is one. Leaves the Lua stack as it found it.
int lx_eval(lx_runtime *rt, const char *chunk, size_t len, const char *chunkname, int render_mode);

const char *lx_result(const lx_runtime *rt, size_t *len);
const char *lx_error(const lx_runtime *rt, size_t *len);
const char *lx_traceback(const lx_runtime *rt, size_t *len);
/// What the chunk printed (print, io.write) since the last lx_eval began.
const char *lx_output(const lx_runtime *rt, size_t *len);

/// Ends the running chunk at its next instruction with `reason`. Safe from any thread, and safe
/// to call repeatedly: every call re-arms the hook, so a chunk that clears hooks is caught again.
void lx_stop(lx_runtime *rt, int reason);

/// Clears a stop set by lx_stop and disarms the hook. Call on the state's own thread once the
/// evaluation has ended, while no lx_stop can race with it.
void lx_stop_clear(lx_runtime *rt);

#endif
