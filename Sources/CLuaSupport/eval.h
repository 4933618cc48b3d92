// CLuaSupport, layer 4 of 6: evaluation (eval.c): lx_eval, lx_invoke, the message handler, the
// result buffers, the chunk cache, the host's own protected calls. Includes stop.h and codec.h below it; knows nothing of HTTP,
// `persisted` or `config`: what lx_invoke calls is found through a function the layer above
// gives it. Layers, lowest first: codec, stop, baselib, eval, then persist/http/log side by
// side, then state (docs/architecture.md).
#ifndef CLUASUPPORT_EVAL_H
#define CLUASUPPORT_EVAL_H

#include "stop.h"

// Pushes what is registered under `name` for `kind` (enum lx_registration_kind): the function
// to call, or nil; returns its Lua type. Runs inside lx_invoke's protected call.
typedef int (*lx_find_registered_fn)(lua_State *L, int kind, const char *name, size_t name_len);

// How lx_invoke finds what to call from now on (state.c: http.c's and persist.c's registrations).
void lx_set_find_registered(lx_runtime *rt, lx_find_registered_fn find);

// A protected call of the host's own (persist.c's saving, loading and undoing; http.c's saving
// and restoring of the registrations) of the C function under its `nargs` arguments, with no
// results: not cut short by the stop of the chunk it follows, with the collector stopped. Lua's
// status.
int lx_host_pcall(lx_runtime *rt, int nargs);

// `sleep` as a global (SPEC V10).
void lx_open_eval(lua_State *L, lx_runtime *rt);
// lx_host_pcall's status as an lx_status: on an error, its message goes to the error buffer.
int lx_host_status(lx_runtime *rt, int status);

#endif
