#define _GNU_SOURCE
#include <stddef.h>
#include <sys/socket.h>

#include "CFastCGI.h"

int cfcgi_accept(int listen_fd) {
    return accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
}
