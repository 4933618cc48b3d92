// string.find, string.match, string.gmatch and string.gsub, with a step budget; and string.rep.
//
// The matcher follows Lua 5.4's lstrlib.c (Copyright (C) 1994-2022 Lua.org, PUC-Rio; MIT
// licence), the algorithm and the messages of 5.4.4, the version luaexec links. luaexec has its
// own copy because liblua's runs entirely in C: a backtracking pattern over a few hundred bytes
// (string.rep("a", 300):find(string.rep("a*", 20) .. "b")) takes minutes inside one call, where
// the stop hook never runs, so neither the time limit nor an administrator's interrupt could end
// it. This copy counts its work and looks at the stop flag every LX_PATTERN_STEPS steps; when it
// is set it raises the hook's own error (lx_raise_stop). Everything else, answers and errors, is
// liblua's: PatternTests runs a corpus and a fuzz against the linked liblua and compares.
//
// A step is about constant work: one call of `match`, one repetition tried by an expansion, one
// byte scanned by %b, 64 bytes compared by a back-reference, one escape of a replacement string.
//
// CLuaSupport, layer 3 of 6, beside baselib.c. Includes baselib.h and stop.h (the stop flag,
// lx_raise_stop). Layers, lowest first: codec, stop, baselib, eval, then persist/http/log side by
// side, then state (docs/architecture.md).

#include "baselib.h"

#include "stop.h"

#include <ctype.h>
#include <limits.h>
#include <string.h>

#define LX_PATTERN_STEPS 4096
#define L_ESC '%'
#define SPECIALS "^$*+?.([%-"
// lstrlib.c's defaults, which Debian's liblua keeps.
#define MAXCAPTURES 32
#define MAXCCALLS 200

#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)

#define uchar(c) ((unsigned char)(c))

typedef struct {
    const char *src_init;  // the subject
    const char *src_end;
    const char *p_end;  // the end of the pattern
    lua_State *L;
    int matchdepth;  // how much deeper `match` may recurse
    long steps;  // left until the next look at the stop flag
    unsigned char level;  // captures open or closed so far
    struct {
        const char *init;
        ptrdiff_t len;  // or CAP_UNFINISHED, CAP_POSITION
    } capture[MAXCAPTURES];
} match_state;

static const char *match(match_state *ms, const char *s, const char *p);

// MARK: - The step budget

// Out of line: the common path of `charge` is a subtraction and a branch. Raises when and as
// lx_hook would: not inside a protected call of the host's own.
static __attribute__((noinline)) void look_at_stop(match_state *ms) {
    ms->steps = LX_PATTERN_STEPS;
    lx_check_stop(ms->L);
}

static inline void charge(match_state *ms, long steps) {
    if ((ms->steps -= steps) <= 0) look_at_stop(ms);
}

// MARK: - Single items

// Where the single-character class starting at p ends.
static const char *class_end(match_state *ms, const char *p) {
    switch (*p++) {
    case L_ESC:
        if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    case '[':
        if (*p == '^') p++;
        // The first character is a member even when it is ']'. Past p_end, *p is the pattern's
        // terminating zero (every Lua string has one), not ']', so the loop reaches the check.
        do {
            if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*(p++) == L_ESC && p < ms->p_end) p++;  // an escape such as %]
        } while (*p != ']');
        return p + 1;
    default:
        return p;
    }
}

// c against a class letter (%a ...): an upper-case letter is the complement; any other character
// stands for itself.
static int match_class(int c, int cl) {
    int res;
    switch (tolower(cl)) {
    case 'a': res = isalpha(c); break;
    case 'c': res = iscntrl(c); break;
    case 'd': res = isdigit(c); break;
    case 'g': res = isgraph(c); break;
    case 'l': res = islower(c); break;
    case 'p': res = ispunct(c); break;
    case 's': res = isspace(c); break;
    case 'u': res = isupper(c); break;
    case 'w': res = isalnum(c); break;
    case 'x': res = isxdigit(c); break;
    case 'z': res = c == 0; break;  // deprecated since 5.2, still in 5.4
    default: return cl == c;
    }
    if (isupper(cl)) res = !res;
    return res;
}

// c against the set [...] from p (at '[') to ec (at its ']').
static int match_bracket_class(int c, const char *p, const char *ec) {
    int member = 1;
    if (*(p + 1) == '^') {
        member = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == L_ESC) {
            p++;
            if (match_class(c, uchar(*p))) return member;
        } else if (*(p + 1) == '-' && p + 2 < ec) {
            p += 2;
            if (uchar(*(p - 2)) <= c && c <= uchar(*p)) return member;
        } else if (uchar(*p) == c) {
            return member;
        }
    }
    return !member;
}

// Whether the subject character at s matches the single item p..ep.
static int single_match(match_state *ms, const char *s, const char *p, const char *ep) {
    if (s >= ms->src_end) return 0;
    int c = uchar(*s);
    switch (*p) {
    case '.': return 1;
    case L_ESC: return match_class(c, uchar(*(p + 1)));
    case '[': return match_bracket_class(c, p, ep - 1);
    default: return uchar(*p) == c;
    }
}

// %bxy at s: the end of the balanced run, or NULL.
static const char *match_balance(match_state *ms, const char *s, const char *p) {
    if (p >= ms->p_end - 1) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p) return NULL;
    const char *start = s;
    int open = *p, close = *(p + 1), depth = 1;
    while (++s < ms->src_end) {
        if (*s == close) {
            if (--depth == 0) break;
        } else if (*s == open) {
            depth++;
        }
    }
    charge(ms, s - start);
    return s < ms->src_end ? s + 1 : NULL;
}

// MARK: - Repetition

// Item p..ep followed by '*' (or '+' after its first match): the longest run first.
static const char *max_expand(match_state *ms, const char *s, const char *p, const char *ep) {
    ptrdiff_t i = 0;
    while (single_match(ms, s + i, p, ep)) {
        charge(ms, 1);
        i++;
    }
    for (; i >= 0; i--) {
        const char *res = match(ms, s + i, ep + 1);
        if (res) return res;
    }
    return NULL;
}

// Item p..ep followed by '-': the shortest run first.
static const char *min_expand(match_state *ms, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *res = match(ms, s, ep + 1);
        if (res) return res;
        if (!single_match(ms, s, p, ep)) return NULL;
        s++;
    }
}

// MARK: - Captures

static const char *start_capture(match_state *ms, const char *s, const char *p, int what) {
    int level = ms->level;
    if (level >= MAXCAPTURES) luaL_error(ms->L, "too many captures");
    ms->capture[level].init = s;
    ms->capture[level].len = what;
    ms->level = (unsigned char)(level + 1);
    const char *res = match(ms, s, p);
    if (!res) ms->level--;  // undo the capture
    return res;
}

// The innermost capture still open.
static int capture_to_close(match_state *ms) {
    for (int level = ms->level - 1; level >= 0; level--)
        if (ms->capture[level].len == CAP_UNFINISHED) return level;
    return luaL_error(ms->L, "invalid pattern capture");
}

static const char *end_capture(match_state *ms, const char *s, const char *p) {
    int l = capture_to_close(ms);
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = match(ms, s, p);
    if (!res) ms->capture[l].len = CAP_UNFINISHED;  // undo the close
    return res;
}

// The index of back-reference %l ('1'..'9' in the pattern).
static int check_capture(match_state *ms, int l) {
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED)
        return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    return l;
}

static const char *match_capture(match_state *ms, const char *s, int l) {
    l = check_capture(ms, l);
    size_t len = (size_t)ms->capture[l].len;
    charge(ms, (long)(len >> 6));
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) return s + len;
    return NULL;
}

// MARK: - The matcher

// Matches pattern p (to p_end) at s: the end of the match, or NULL. Tail calls are jumps.
static const char *match(match_state *ms, const char *s, const char *p) {
    if (ms->matchdepth-- == 0) luaL_error(ms->L, "pattern too complex");
    charge(ms, 1);
again:
    if (p == ms->p_end) goto done;
    switch (*p) {
    case '(':
        if (*(p + 1) == ')') s = start_capture(ms, s, p + 2, CAP_POSITION);
        else s = start_capture(ms, s, p + 1, CAP_UNFINISHED);
        goto done;
    case ')':
        s = end_capture(ms, s, p + 1);
        goto done;
    case '$':
        if (p + 1 != ms->p_end) break;  // a '$' that is not last is an ordinary character
        s = s == ms->src_end ? s : NULL;
        goto done;
    case L_ESC:
        switch (*(p + 1)) {
        case 'b':
            s = match_balance(ms, s, p + 2);
            if (s) {
                p += 4;
                goto again;
            }
            goto done;
        case 'f': {
            p += 2;
            if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
            const char *ep = class_end(ms, p);
            // At the subject's ends the neighbour is its terminating zero.
            int previous = s == ms->src_init ? '\0' : uchar(*(s - 1));
            if (!match_bracket_class(previous, p, ep - 1) && match_bracket_class(uchar(*s), p, ep - 1)) {
                p = ep;
                goto again;
            }
            s = NULL;
            goto done;
        }
        case '0': case '1': case '2': case '3': case '4':
        case '5': case '6': case '7': case '8': case '9':
            s = match_capture(ms, s, uchar(*(p + 1)));
            if (s) {
                p += 2;
                goto again;
            }
            goto done;
        default:
            break;  // a class such as %a, with an optional suffix
        }
        break;
    default:
        break;
    }

    // A single item and its optional suffix.
    const char *ep = class_end(ms, p);
    if (!single_match(ms, s, p, ep)) {
        if (*ep == '*' || *ep == '?' || *ep == '-') {  // may match zero times
            p = ep + 1;
            goto again;
        }
        s = NULL;  // '+' or no suffix
        goto done;
    }
    switch (*ep) {
    case '?': {
        const char *res = match(ms, s + 1, ep + 1);
        if (res) {
            s = res;
            goto done;
        }
        p = ep + 1;
        goto again;
    }
    case '+':
        s = max_expand(ms, s + 1, p, ep);
        goto done;
    case '*':
        s = max_expand(ms, s, p, ep);
        goto done;
    case '-':
        s = min_expand(ms, s, p, ep);
        goto done;
    default:
        s++;
        p = ep;
        goto again;
    }
done:
    ms->matchdepth++;
    return s;
}

// MARK: - Results

// Capture i, or the whole match s..e when the pattern has none (i == 0). Returns its length, or
// CAP_POSITION after pushing the position.
static ptrdiff_t get_one_capture(match_state *ms, int i, const char *s, const char *e, const char **cap) {
    if (i >= ms->level) {
        if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        *cap = s;
        return e - s;
    }
    ptrdiff_t len = ms->capture[i].len;
    *cap = ms->capture[i].init;
    if (len == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
    else if (len == CAP_POSITION) lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    return len;
}

static void push_one_capture(match_state *ms, int i, const char *s, const char *e) {
    const char *cap;
    ptrdiff_t len = get_one_capture(ms, i, s, e, &cap);
    if (len != CAP_POSITION) lua_pushlstring(ms->L, cap, (size_t)len);
}

// Pushes the captures, or the whole match when there are none and s is given.
static int push_captures(match_state *ms, const char *s, const char *e) {
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++) push_one_capture(ms, i, s, e);
    return n;
}

// MARK: - The library functions

static void prepare(match_state *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
    ms->L = L;
    ms->matchdepth = MAXCCALLS;
    ms->steps = LX_PATTERN_STEPS;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
}

// Before each attempt. matchdepth is back at MAXCCALLS after any attempt that returned; it is set
// anyway, so that a gmatch iterator called again after an error ("pattern too complex", a stop)
// starts whole.
static void reprepare(match_state *ms) {
    ms->level = 0;
    ms->matchdepth = MAXCCALLS;
}

// string.find's and string.gmatch's `init`: 1-based, negative from the end, clipped below.
static size_t relative_position(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

// Whether p has none of the characters that make it a pattern (it may hold zeros).
static int no_specials(const char *p, size_t lp) {
    size_t upto = 0;
    do {
        if (strpbrk(p + upto, SPECIALS)) return 0;
        upto += strlen(p + upto) + 1;
    } while (upto <= lp);
    return 1;
}

// A search for `p` taken literally (find's `plain`, or a pattern without specials), as liblua's
// lmemfind. It runs in C too: a long `p` tried at each place of a long `s` ("a" x 1e6 .. "b" in
// "a" x 2e6) compares ~1e12 bytes, so it looks at the stop at each place it tries.
static const char *find_plain(lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
    if (lp == 0) return s;
    if (lp > ls) return NULL;
    const char *last = s + (ls - lp);
    for (const char *at = s; at <= last; at++) {
        at = memchr(at, *p, (size_t)(last - at) + 1);
        if (!at) return NULL;
        lx_check_stop(L);
        if (memcmp(at + 1, p + 1, lp - 1) == 0) return at;
    }
    return NULL;
}

static int find_aux(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = relative_position(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {  // starts past the end: nothing to find
        luaL_pushfail(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
        const char *at = find_plain(L, s + init, ls - init, p, lp);
        if (at) {
            lua_pushinteger(L, (at - s) + 1);
            lua_pushinteger(L, (at - s) + (lua_Integer)lp);
            return 2;
        }
    } else {
        match_state ms;
        const char *s1 = s + init;
        int anchor = *p == '^';
        if (anchor) {
            p++;
            lp--;
        }
        prepare(&ms, L, s, ls, p, lp);
        do {
            reprepare(&ms);
            const char *e = match(&ms, s1, p);
            if (e) {
                if (!find) return push_captures(&ms, s1, e);
                lua_pushinteger(L, (s1 - s) + 1);
                lua_pushinteger(L, e - s);
                return push_captures(&ms, NULL, NULL) + 2;
            }
        } while (s1++ < ms.src_end && !anchor);
    }
    luaL_pushfail(L);
    return 1;
}

static int str_find(lua_State *L) { return find_aux(L, 1); }
static int str_match(lua_State *L) { return find_aux(L, 0); }

typedef struct {
    const char *src;  // where the next attempt starts
    const char *p;
    const char *lastmatch;  // the end of the last match: an empty match there does not count
    match_state ms;
} gmatch_state;

static int gmatch_aux(lua_State *L) {
    gmatch_state *gm = lua_touserdata(L, lua_upvalueindex(3));
    gm->ms.L = L;  // the iterator may run in another coroutine than gmatch did
    for (const char *src = gm->src; src <= gm->ms.src_end; src++) {
        reprepare(&gm->ms);
        const char *e = match(&gm->ms, src, gm->p);
        if (e && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            return push_captures(&gm->ms, src, e);
        }
    }
    return 0;
}

// No anchor here: a '^' is an ordinary character for gmatch (the manual, §6.4.1).
static int str_gmatch(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = relative_position(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2);  // the iterator keeps both strings alive as upvalues
    gmatch_state *gm = lua_newuserdatauv(L, sizeof *gm, 0);
    if (init > ls) init = ls + 1;  // matches nothing, and s + init stays in bounds
    prepare(&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_aux, 3);
    return 1;
}

// Appends the replacement string (argument 3) for the match s..e, with its %0-%9 and %%.
static void add_string(match_state *ms, luaL_Buffer *b, const char *s, const char *e) {
    lua_State *L = ms->L;
    size_t l;
    const char *news = lua_tolstring(L, 3, &l);
    const char *p;
    while ((p = memchr(news, L_ESC, l)) != NULL) {
        charge(ms, 1);
        luaL_addlstring(b, news, (size_t)(p - news));
        p++;  // the character after '%' (the string's zero when '%' ends it)
        if (*p == L_ESC) {
            luaL_addchar(b, *p);
        } else if (*p == '0') {
            luaL_addlstring(b, s, (size_t)(e - s));
        } else if (isdigit(uchar(*p))) {
            const char *cap;
            ptrdiff_t len = get_one_capture(ms, *p - '1', s, e, &cap);
            if (len == CAP_POSITION) luaL_addvalue(b);
            else luaL_addlstring(b, cap, (size_t)len);
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", L_ESC);
        }
        l -= (size_t)(p + 1 - news);
        news = p + 1;
    }
    luaL_addlstring(b, news, l);
}

// Appends the replacement for the match s..e; returns whether it differs from the match's text
// as far as gsub can tell (false and nil keep the original).
static int add_value(match_state *ms, luaL_Buffer *b, const char *s, const char *e, int type) {
    lua_State *L = ms->L;
    switch (type) {
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_one_capture(ms, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:  // a string or a number
        add_string(ms, b, s, e);
        return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1)) return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int str_gsub(lua_State *L) {
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int type = lua_type(L, 3);
    lua_Integer max_n = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = *p == '^';
    lua_Integer n = 0;
    int changed = 0;
    luaL_argexpected(L, type == LUA_TNUMBER || type == LUA_TSTRING || type == LUA_TFUNCTION || type == LUA_TTABLE, 3,
        "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    match_state ms;
    prepare(&ms, L, src, srcl, p, lp);
    while (n < max_n) {
        reprepare(&ms);
        const char *e = match(&ms, src, p);
        if (e && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, type) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);  // the subject itself, not a copy
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

// MARK: - string.rep
// lstrlib.c's str_rep, but for one case: an empty string with an empty separator, which liblua
// makes by copying nothing n - 1 times, in C (string.rep("", 1e12) ran for most of an hour).
// Every other string.rep allocates its whole result first, so the memory cap bounds it.

// lstrlib.c's limit on a result's size: what fits an int.
#define MAXSIZE (sizeof(size_t) < sizeof(int) ? ~(size_t)0 : (size_t)INT_MAX)

static int str_rep(lua_State *L) {
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);
    if (n <= 0 || l + lsep == 0) {
        lua_pushliteral(L, "");
    } else if (l + lsep < l || l + lsep > MAXSIZE / (size_t)n) {
        return luaL_error(L, "resulting string too large");
    } else {
        size_t total = (size_t)n * l + (size_t)(n - 1) * lsep;
        luaL_Buffer b;
        char *p = luaL_buffinitsize(L, &b, total);
        while (n-- > 1) {
            memcpy(p, s, l);
            p += l;
            if (lsep > 0) {
                memcpy(p, sep, lsep);
                p += lsep;
            }
        }
        memcpy(p, s, l);
        luaL_pushresultsize(&b, total);
    }
    return 1;
}

void lx_open_patterns(lua_State *L) {
    static const luaL_Reg functions[] = {
        {"find", str_find},
        {"match", str_match},
        {"gmatch", str_gmatch},
        {"gsub", str_gsub},
        {"rep", str_rep},
        {NULL, NULL},
    };
    // The strings' metatable's __index is this table, so methods (s:find) get them too.
    lua_getglobal(L, "string");
    luaL_setfuncs(L, functions, 0);
    lua_pop(L, 1);
}
