#ifndef CFASTCGI_H
#define CFASTCGI_H

// The protocol's definitions (record types, header layout, roles, flags, statuses) from
// libfcgi-dev's fastcgi.h: luaexecd parses and writes the records itself and links no libfcgi.
#include <fastcgi.h>
// The event loop's system calls (epoll, eventfd), which Swift's Glibc module leaves out, and
// malloc_trim.
#include <malloc.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>

/// accept4 with SOCK_NONBLOCK | SOCK_CLOEXEC: a connection is never inheritable, not even for
/// an instant (a chunk may fork on another thread). Glibc declares accept4 only under
/// _GNU_SOURCE, which a Swift module cannot set; this file's C can.
int cfcgi_accept(int listen_fd);

#endif
