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
    LX_ERR_NOT_FOUND = 7,  // lx_invoke: nothing is registered under the name
    LX_SUSPENDED = 8,  // the chunk waits in `sleep`: lx_suspension says for how long; lx_resume goes on
    LX_ERR_TOO_LARGE = 9,  // the results hold more values than an answer may (the message says how many)
};

/// What the `http` module registers (SPEC V4, V7).
enum lx_registration_kind {
    LX_KIND_ENDPOINT = 0,  // http.listen: /api/v1/exec/<name>
    LX_KIND_ACTION = 1,    // http.action: /api/v1/exec/command?action=<name>
    LX_KIND_CONFIG_CALL = 2,  // the config callback lx_next_config_call chose (the name is ignored)
    LX_KIND_TIMER = 3,  // timer.after / timer.every: the timer whose number is the name, in decimal
};

/// A timer set (`removed` 0) or cancelled with timer.cancel (`removed` 1), reported to the host as
/// it happens, on the state's thread (SPEC V9). `seconds` is the delay (timer.after) or the
/// interval (timer.every: `every` 1); `source` and `line` where the call was. The host keeps the
/// schedule and runs a due timer with lx_invoke(LX_KIND_TIMER). It must not raise Lua errors or
/// call into the state; the pointers are valid only during the call.
typedef void (*lx_timer_hook)(void *context, long long id, int removed, double seconds, int every, const char *source,
    int line);

/// One change to the registrations, reported to the host as it happens, on the state's thread.
/// The pointers are valid only during the call.
typedef struct {
    int kind;
    /// 1: `name` was unregistered (the fields below are then empty); 0: registered or replaced.
    int removed;
    const char *name;
    size_t name_len;
    /// The chunk name and line of the http.listen / http.action call.
    const char *source;
    int line;
    /// Actions: the help text, and one line "name\ttype\t0|1\n" per parameter (1: optional).
    const char *help;
    size_t help_len;
    const char *params;
    size_t params_len;
} lx_registration;

/// Called for every registration change. It must not raise Lua errors or call into the state.
typedef void (*lx_registration_hook)(void *context, const lx_registration *registration);

/// How lx_eval encodes the chunk's results into the result buffer.
enum lx_render_mode {
    LX_RENDER_TEXT = 0,  // each value as luaL_tolstring gives it
    LX_RENDER_TREE = 1,  // a typed tree (see the result encoding in codec.c) for JSON
};

/// NULL when the linked liblua is one whose stop luaexec can make reach finalizers and hook
/// functions (stop.c, "Where Lua turns hooks off"); otherwise why not. Checked once.
const char *lx_check_layout(void);

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
/// lx_eval with arguments for the chunk's `...` (SPEC E11), encoded in `args` as lx_invoke's
/// are (a u32 count, then tagged values); NULL: none.
int lx_eval_args(lx_runtime *rt, const char *chunk, size_t len, const char *chunkname, const char *args,
    size_t args_len, int render_mode);

const char *lx_result(const lx_runtime *rt, size_t *len);
const char *lx_error(const lx_runtime *rt, size_t *len);
const char *lx_traceback(const lx_runtime *rt, size_t *len);
/// What the chunk printed (print, io.write) since the last lx_eval began.
const char *lx_output(const lx_runtime *rt, size_t *len);
/// Frees the buffers above (emptying them) that grew past 1 MiB, once the host has copied what
/// it needs: a 100 MiB result must not stay resident until the next large one.
void lx_trim_buffers(lx_runtime *rt);

/// Compiles `chunk` as Lua source text without running it (SPEC E12), in a throwaway state of
/// its own capped at `memory_limit` bytes and `time_limit_ns` nanoseconds of compiling: safe on
/// any thread, never touches a runtime. LX_OK, LX_ERR_SYNTAX (a binary chunk too), LX_ERR_MEMORY
/// or LX_ERR_TIMEOUT; on an error `*message` is Lua's message, malloc'd (the caller frees it),
/// or NULL when even that could not be allocated.
int lx_check_syntax(const char *chunk, size_t len, const char *chunkname, size_t memory_limit, long long time_limit_ns,
    char **message, size_t *message_len);

/// Calls the function registered under `name` for `kind` with the arguments encoded in `args`
/// (lx_encode's format: a u32 count, then tagged values), under the same limits and into the
/// same buffers as lx_eval. LX_ERR_NOT_FOUND when nothing is registered under the name.
int lx_invoke(lx_runtime *rt, int kind, const char *name, size_t name_len, const char *args, size_t args_len,
    int render_mode);

// MARK: waiting (SPEC V10)

/// Whether the evaluations from now on may wait in `sleep` (a request's, a timer's: the host
/// resumes them), and the longest one `sleep` may ask for. Init scripts, stored scripts being
/// installed and config callbacks run to completion: there `sleep` is an error.
void lx_set_suspendable(lx_runtime *rt, int suspendable, double max_seconds);
/// Room left among the evaluations that wait in `sleep` now: how many more may wait
/// (limits.wait_capacity) and how much output the one about to run may hold while it waits
/// (below 0: what waits, and its own request, take all the room). A `sleep` past either is a
/// Lua error rather than a wait; the host sets both before each run.
void lx_set_wait_room(lx_runtime *rt, long waits, long long output_bytes);
/// After LX_SUSPENDED: the reference that names the waiting evaluation, and the seconds it asked
/// to wait. What it printed so far is in the output buffer.
void lx_suspension(const lx_runtime *rt, int *ref, double *seconds);
/// Goes on with the evaluation `ref` names after its `sleep`, as lx_eval runs a chunk (its
/// output buffer starts empty); its results, error or next LX_SUSPENDED as lx_eval's. It may
/// print the output limit less `output_used`, what its earlier runs printed (lx_output_used).
int lx_resume(lx_runtime *rt, int ref, int render_mode, size_t output_used);
/// What the evaluation that just ran (or paused in `sleep`) printed in all, its runs before its
/// last resume included: lx_resume's `output_used` for its next run.
size_t lx_output_used(lx_runtime *rt);
/// Ends the evaluation `ref` names without resuming it: its pending to-be-closed variables are
/// closed (under the stop in effect, if any), its coroutine let go.
void lx_abandon(lx_runtime *rt, int ref);

/// The traceback of the evaluation `ref` names where it waits (in `sleep`), into the traceback
/// buffer (lx_traceback), before lx_abandon ends it (SPEC O11); its locals too when
/// lx_set_traceback_locals is on. LX_OK, or an error status (nothing written).
int lx_waiting_traceback(lx_runtime *rt, int ref);

/// Tells `hook` of every timer set or cancelled from now on, and allows at most `limit` timers at
/// once; without a hook, timer.after and timer.every are errors.
void lx_set_timer_hook(lx_runtime *rt, lx_timer_hook hook, void *context, int limit);
/// Forgets the timer `id` (a timer.after that ran, or one the host withdraws); no hook is called.
/// Allocates nothing. 1 when it was set.
int lx_drop_timer(lx_runtime *rt, long long id);
/// While `hold` (a stored script's run, SPEC V8), timer.cancel keeps each function it drops
/// aside, so that a run that fails can give back the timers it cancelled: lx_restore_timer gives
/// one back (1 when it was kept aside and is set again; the host then puts it back in its
/// schedule), lx_release_held_timers forgets what was kept aside.
void lx_hold_cancelled_timers(lx_runtime *rt, int hold);
int lx_restore_timer(lx_runtime *rt, long long id);
void lx_release_held_timers(lx_runtime *rt);

/// Tells `hook` of every registration from now on; `context` is passed back to it.
void lx_set_registration_hook(lx_runtime *rt, lx_registration_hook hook, void *context);

/// Called with what the running chunk printed (print, io.write), as it prints it (SPEC E13), on
/// the state's thread, during an evaluation. It must not raise Lua errors or call into the state;
/// the bytes are valid only during the call.
typedef void (*lx_output_hook)(void *context, const char *data, size_t len);

/// Hands the output of the evaluations from now on to `hook` as it is printed (NULL: keep it all
/// for lx_output): once 4 KiB wait, or about 100 ms after the first byte that waits while Lua code
/// runs on. What was not handed over when an evaluation ends or waits in `sleep` is in the output
/// buffer (lx_output). The output limit still bounds the whole.
void lx_stream_output(lx_runtime *rt, lx_output_hook hook, void *context);

/// Whether the tracebacks of the evaluations from now on list each frame's locals (SPEC O11),
/// rendered short and without calling any metamethod.
void lx_set_traceback_locals(lx_runtime *rt, int on);

/// Called by `log.write(tag, text)` on the state's thread, with the text as `tostring` gives it.
/// The pointers are valid only during the call. It must not raise Lua errors or call into the
/// state.
/// Returns 0 when the line was dropped (past the host's rate), else 1: what `log.write` returns.
typedef int (*lx_log_hook)(void *context, const char *tag, size_t tag_len, const char *text, size_t text_len);

/// Hands every `log.write` to `hook` from now on; `context` is passed back to it. Without a
/// hook, log.write writes nothing.
void lx_set_log_hook(lx_runtime *rt, lx_log_hook hook, void *context);

/// The most names (endpoints and actions together) `http.listen` and `http.action` may keep
/// registered at once (limits.endpoints); one more is a Lua error. Replacing a name is not one
/// more.
void lx_set_registration_limit(lx_runtime *rt, int limit);
/// Whether what runs next is the box's own work (an init or stored script, or a timer one of them
/// set) rather than a request's: its registrations count apart against limits.endpoints.
void lx_set_own_work(lx_runtime *rt, int own);

// MARK: stored scripts' registrations (SPEC V8)

/// Keeps a copy of what is registered now (endpoints and actions), before a stored script runs,
/// so that a version whose run fails leaves the registrations as they were. LX_OK, or an error
/// status (nothing kept) with the message in the error buffer.
int lx_save_registrations(lx_runtime *rt);
/// Puts back what lx_save_registrations kept, whatever was registered or removed since, and
/// forgets the copy. The registration hook is not called: the host keeps its own copy of its
/// listing.
int lx_restore_registrations(lx_runtime *rt);
/// Forgets what lx_save_registrations kept: the registrations made since stand.
int lx_forget_saved_registrations(lx_runtime *rt);
/// Removes what is registered under `name` for `kind` (LX_KIND_ENDPOINT or LX_KIND_ACTION), as
/// http.stop_listen(name) or http.stop_action(name) would; the registration hook is told.
/// LX_OK, LX_ERR_NOT_FOUND when nothing was registered under it, or an error status.
int lx_withdraw(lx_runtime *rt, int kind, const char *name, size_t name_len);

/// The config callbacks (config.register) the same way, by the stored script whose run
/// registered them: lx_save_config_callbacks keeps a copy before a run and notes what the run
/// registers; lx_end_config_callbacks ends it: keep 0 puts the copy back (the run failed); keep 1
/// withdraws what `owner` registered in earlier runs and did not register again, and makes what
/// this run registered `owner`'s. lx_withdraw_config_callbacks removes all of `owner`'s (the
/// script is disabled or deleted). LX_OK, or an error status with the message in the error buffer.
int lx_save_config_callbacks(lx_runtime *rt);
int lx_end_config_callbacks(lx_runtime *rt, int keep, const char *owner, size_t owner_len);
int lx_withdraw_config_callbacks(lx_runtime *rt, const char *owner, size_t owner_len);
/// Whose the config callbacks registered from now on are, outside a stored script's own run:
/// the stored script whose timer callback or handler runs (NULL: nobody's, as a request's or an
/// init script's). Plain C, no Lua: LX_OK, or LX_ERR_MEMORY (then nobody's).
int lx_set_config_owner(lx_runtime *rt, const char *owner, size_t owner_len);

/// The chunk lx_eval is running now, or NULL when none is (a registration made by an endpoint).
const char *lx_current_chunk(const lx_runtime *rt, size_t *len);

// MARK: completion and inspection (SPEC O10)
// Each reads the state raw and runs nothing of it: no metamethod (`__index` is followed only
// when it is a table), no finalizer, no function; it changes nothing a chunk can see. `path` is
// a name path whose segments are Lua names joined by '.' (empty: the globals table); the caller
// checks it. The answer is one value in the result buffer (lx_encode's format, a count of 1);
// LX_OK, or LX_ERR_MEMORY / LX_ERR_RUNTIME with the message in the error buffer. Every answer is
// bounded (keys looked at, candidates, lengths) and says `truncated` when it was cut.

/// The fields of the value `path` names (and of its `__index` tables) whose names start with
/// `word`; only functions when `methods` (after `:`): {candidates = {{name, type}...}, truncated}.
int lx_complete(lx_runtime *rt, const char *path, size_t path_len, const char *word, size_t word_len, int methods);
/// What the value `path` names is: {type, value, ...} with a function's parameters and source, a
/// table's size and first entries, a string's length, whether it has a metatable.
int lx_inspect(lx_runtime *rt, const char *path, size_t path_len);
/// The globals a fresh state does not have, or holds another value under: {globals = {{name,
/// type}...}, truncated}.
int lx_own_globals(lx_runtime *rt);

// MARK: persisted and config (SPEC V5, V6)

/// Whether `persisted` or `config` changed since the last lx_take_changes.
int lx_has_changes(const lx_runtime *rt);

/// Encodes what changed since the last call, and forgets it: a u32 count of `persisted`'s
/// top-level keys, each as its key then its value (nil: removed); then a u32 count of config
/// paths, each as its path then its value. Values in lx_encode's tags ('m' for tables, keys
/// typed). *data is NULL when nothing changed. Valid until the next call.
int lx_take_changes(lx_runtime *rt, const char **data, size_t *len);
/// Forgets what changed without encoding it (after lx_take_changes failed: a failed
/// allocation), so that the next evaluation's save does not fail the same way. Cannot fail.
void lx_drop_changes(lx_runtime *rt);

/// Loads saved entries (the format of one section of lx_take_changes) into `persisted`
/// (config = 0) or the config store (config = 1), at start, before any chunk runs.
int lx_load_saved(lx_runtime *rt, int config, const char *data, size_t len);

/// Puts back what the database holds for the entries of one section (the format of
/// lx_load_saved; a nil value removes the key), after a save failed: no callbacks run and nothing
/// is reported as changed (SPEC V6: the state never serves a value a restart would take back).
int lx_restore_saved(lx_runtime *rt, int config, const char *data, size_t len);

/// Sets a config path to one encoded scalar value (nil: unset) from outside the state, queueing
/// its callbacks when the value changes. `commit`: also report it in lx_take_changes (a change the
/// database does not have yet).
int lx_apply_config(lx_runtime *rt, const char *path, size_t path_len, const char *value, size_t value_len,
    int commit);

/// Chooses the next queued config callback; returns 0 when none is queued. *path (valid until
/// the next call) is the path whose change queued it. Call it with lx_invoke(LX_KIND_CONFIG_CALL).
int lx_next_config_call(lx_runtime *rt, const char **path, size_t *path_len);
/// Forgets every queued config callback.
void lx_drop_config_calls(lx_runtime *rt);

/// The encoded size of `persisted`, and its cap.
size_t lx_persisted_bytes(const lx_runtime *rt);
void lx_set_persist_limit(lx_runtime *rt, size_t bytes);

/// Ends the running chunk at its next instruction with `reason`. Safe from any thread, and safe
/// to call repeatedly: every call re-arms the hook, so a chunk that clears hooks is caught again.
void lx_stop(lx_runtime *rt, int reason);

/// Clears a stop set by lx_stop and disarms the hook. Call on the state's own thread once the
/// evaluation has ended, while no lx_stop can race with it.
void lx_stop_clear(lx_runtime *rt);

#endif
