// CLuaSupport, below the layers: a chunk handed to Lua's parser a few hundred bytes at a time
// (lua_load's reader), so that its caller can look at the clock or the stop between pieces: no
// hook runs in the parser, and some constructs make it quadratic. Shared by check.c (a deadline
// of its own) and stop.c (the resident state's stop), which include nothing else of each other.
#ifndef LX_SLICES_H
#define LX_SLICES_H

#include <stddef.h>

// Small enough that the parser, however slow a construct makes it, comes back for more input
// within milliseconds (a slice of `or a` terms appends ~50 jumps to a list of at most ~200,000).
#define LX_LOAD_SLICE 256

typedef struct {
    const char *next;
    size_t left;
} lx_slices;

// The next piece (at most LX_LOAD_SLICE bytes), or NULL with *size 0 at the end.
static inline const char *lx_slices_next(lx_slices *slices, size_t *size) {
    if (slices->left == 0) {
        *size = 0;
        return NULL;
    }
    size_t n = slices->left < LX_LOAD_SLICE ? slices->left : LX_LOAD_SLICE;
    const char *piece = slices->next;
    slices->next += n;
    slices->left -= n;
    *size = n;
    return piece;
}

#endif
