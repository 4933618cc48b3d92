#ifndef CLUASUPPORT_TIMER_H
#define CLUASUPPORT_TIMER_H

#include <lua5.4/lua.h>

void lx_open_timer(lua_State *L);
// Pushes the function of the timer whose number `name` spells, or nil (cancelled, ran): for
// lx_invoke, through state.c's find_registered. Returns the pushed value's type.
int lx_push_timer(lua_State *L, const char *name, size_t name_len);

#endif
