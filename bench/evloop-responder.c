// The event-loop floor for `make bench` (SPEC P2): what a FastCGI Lua daemon without any
// hand-off can do at best. One thread, one epoll loop owning every connection, FastCGI records
// parsed here, each request's body evaluated inline as a chunk in one resident lua_State, the
// first result written back. No auth, no limits, no log: only the protocol and Lua.
// Usage: evloop-responder SOCKET
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

typedef struct {
    unsigned char *data;
    size_t len, cap;
} bytes;

typedef struct {
    int fd, keep, id;
    bytes in, out, body;
} conn;

static lua_State *L;

static void put(bytes *b, const void *p, size_t n) {
    if (b->len + n > b->cap) {
        b->cap = (b->len + n) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) abort();
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

static void record(bytes *b, int type, int id, const void *content, size_t n) {
    unsigned char h[8] = {1, (unsigned char)type, (unsigned char)(id >> 8), (unsigned char)id,
                          (unsigned char)(n >> 8), (unsigned char)n, 0, 0};
    put(b, h, 8);
    put(b, content, n);
}

static void answer(conn *c) {
    const char *text = "";
    size_t n = 0;
    if (luaL_loadbufferx(L, (const char *)c->body.data, c->body.len, "=body", "t") == LUA_OK
        && lua_pcall(L, 0, 1, 0) == LUA_OK) {
        text = luaL_tolstring(L, -1, &n);
    }
    char head[128];
    int h = snprintf(head, sizeof head, "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %zu\r\n\r\n", n);
    bytes out = {0};
    put(&out, head, (size_t)h);
    put(&out, text, n);
    record(&c->out, 6, c->id, out.data, out.len);
    free(out.data);
    lua_settop(L, 0);
    record(&c->out, 6, c->id, NULL, 0);
    unsigned char end[8] = {0};
    record(&c->out, 3, c->id, end, 8);
    c->body.len = 0;
}

// Parses what is buffered; returns -1 on a protocol error.
static int parse(conn *c) {
    size_t at = 0;
    while (c->in.len - at >= 8) {
        unsigned char *r = c->in.data + at;
        size_t n = (size_t)r[4] << 8 | r[5], total = 8 + n + r[6];
        if (r[0] != 1) return -1;
        if (c->in.len - at < total) break;
        int type = r[1], id = r[2] << 8 | r[3];
        if (type == 1 && n == 8) {
            c->id = id;
            c->keep = r[10] & 1;
        } else if (type == 5 && n == 0) {
            answer(c);
        } else if (type == 5) {
            put(&c->body, r + 8, n);
        }
        at += total;
    }
    memmove(c->in.data, c->in.data + at, c->in.len - at);
    c->in.len -= at;
    return 0;
}

static void drop(int ep, conn *c) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c->in.data);
    free(c->out.data);
    free(c->body.data);
    free(c);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s SOCKET\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    L = luaL_newstate();
    luaL_openlibs(L);
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    snprintf(address.sun_path, sizeof address.sun_path, "%s", argv[1]);
    unlink(argv[1]);
    if (bind(listener, (struct sockaddr *)&address, sizeof address) || listen(listener, 1024)) {
        perror("listen");
        return 1;
    }
    chmod(argv[1], 0666);
    int ep = epoll_create1(0);
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, listener, &event);
    struct epoll_event events[64];
    unsigned char scratch[65536];
    for (;;) {
        int ready = epoll_wait(ep, events, 64, -1);
        for (int i = 0; i < ready; i++) {
            conn *c = events[i].data.ptr;
            if (!c) {
                int fd;
                while ((fd = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    c = calloc(1, sizeof *c);
                    c->fd = fd;
                    struct epoll_event watch = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &watch);
                }
                continue;
            }
            ssize_t n = read(c->fd, scratch, sizeof scratch);
            if (n <= 0 && !(n < 0 && errno == EAGAIN)) {
                drop(ep, c);
                continue;
            }
            if (n > 0) put(&c->in, scratch, (size_t)n);
            if (parse(c) < 0) {
                drop(ep, c);
                continue;
            }
            // Answers are small: one write each.
            if (c->out.len > 0) {
                ssize_t w = send(c->fd, c->out.data, c->out.len, MSG_NOSIGNAL);
                c->out.len = 0;
                if (w < 0 || !c->keep) drop(ep, c);
            }
        }
    }
}
