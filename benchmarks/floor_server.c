/*
 * The floor: the least a server can do and still pass chatroom-bench's workloads.
 * One thread, epoll, one room, no limits, no history, no checks.
 * Each round of epoll's ready sockets is read in full, its events are appended to a
 * transcript in one write, and every member is sent the round's events in one write,
 * as chatroom's hub does. It answers hello, say, ping and bye; nothing else.
 *
 * It is not a chat server. It exists to say how much of a figure is this machine's
 * kernel and how much is the server: see docs/performance.md.
 *
 *     chatroom-bench --floor        # compiles it and runs it beside chatroom
 *
 *     cc -O2 -o /tmp/floor_server benchmarks/floor_server.c
 *     taskset -c 0 /tmp/floor_server 127.0.0.1 5002 /tmp/floor.log [PACING [exact]]
 *     chatroom-bench latency --addr 127.0.0.1:5002 --server-pid $(pgrep floor_server)
 *
 * PACING (default 0): after a flush that took T, the next one waits PACING x T, the
 * hub's FLUSH_PACING; 0 flushes after every round. epoll counts whole milliseconds, as
 * asyncio's loop does, so a wait is rounded up to one; a fifth argument "exact" arms a
 * timerfd instead, for waits to the microsecond.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 20000
#define IN_CAP (256 * 1024)
#define NAME_CAP 64

typedef struct {
    int fd;
    int joined;
    char name[NAME_CAP];
    char *in;
    size_t in_len;
    char *out; /* what the kernel did not take yet */
    size_t out_len, out_cap;
} conn_t;

static conn_t *conns[MAX_CONNS];
static int members[MAX_CONNS];
static int n_members;
static long next_id = 1;
static char *batch;
static size_t batch_len, batch_cap;
static int transcript_fd = -1;
static int epfd;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void stamp(char *out, size_t cap) {
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    snprintf(out, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (long)(tv.tv_usec / 1000));
}

static void append(char **buf, size_t *len, size_t *cap, const char *data, size_t n) {
    if (*len + n > *cap) {
        *cap = (*len + n) * 2;
        *buf = realloc(*buf, *cap);
    }
    memcpy(*buf + *len, data, n);
    *len += n;
}

static void drop(conn_t *c);

static void send_to(conn_t *c, const char *data, size_t n) {
    if (c->out_len == 0) {
        ssize_t sent = write(c->fd, data, n);
        if (sent == (ssize_t)n) return;
        if (sent < 0) {
            if (errno != EAGAIN) return; /* its read side will see the error */
            sent = 0;
        }
        data += sent;
        n -= sent;
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.fd = c->fd};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
    append(&c->out, &c->out_len, &c->out_cap, data, n);
}

static void publish(const char *line, size_t n) {
    append(&batch, &batch_len, &batch_cap, line, n);
}

static void flush(void) {
    if (!batch_len) return;
    if (transcript_fd >= 0 && write(transcript_fd, batch, batch_len) < 0) perror("transcript");
    for (int i = 0; i < n_members; i++) send_to(conns[members[i]], batch, batch_len);
    batch_len = 0;
}

static void leave(conn_t *c) {
    char line[256], ts[96];
    stamp(ts, sizeof ts);
    int n = snprintf(line, sizeof line,
                     "{\"type\":\"leave\",\"id\":%ld,\"ts\":\"%s\",\"room\":\"lobby\","
                     "\"name\":\"%s\",\"reason\":\"disconnected\"}\n",
                     next_id++, ts, c->name);
    publish(line, n);
}

static void drop(conn_t *c) {
    if (c->joined) {
        for (int i = 0; i < n_members; i++)
            if (members[i] == c->fd) {
                members[i] = members[--n_members];
                break;
            }
        leave(c);
    }
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    conns[c->fd] = NULL;
    free(c->in);
    free(c->out);
    free(c);
}

/* The value of "key":"..." in a line, copied into out; no escapes (the bench sends none). */
static int field(const char *line, const char *key, char *out, size_t cap) {
    char pattern[32];
    snprintf(pattern, sizeof pattern, "\"%s\":\"", key);
    const char *at = strstr(line, pattern);
    if (!at) return -1;
    at += strlen(pattern);
    const char *end = strchr(at, '"');
    if (!end || (size_t)(end - at) >= cap) return -1;
    memcpy(out, at, end - at);
    out[end - at] = 0;
    return (int)(end - at);
}

static void handle_line(conn_t *c, char *line) {
    static char text[IN_CAP], out[IN_CAP + 512];
    char ts[96];
    if (strstr(line, "\"type\":\"say\"") && c->joined) {
        if (field(line, "text", text, sizeof text) < 0) return;
        stamp(ts, sizeof ts);
        int n = snprintf(out, sizeof out,
                         "{\"type\":\"message\",\"id\":%ld,\"ts\":\"%s\",\"room\":\"lobby\","
                         "\"from\":\"%s\",\"text\":\"%s\"}\n",
                         next_id++, ts, c->name, text);
        publish(out, n);
    } else if (strstr(line, "\"type\":\"hello\"") && !c->joined) {
        if (field(line, "name", c->name, NAME_CAP) < 0) return;
        c->joined = 1;
        members[n_members++] = c->fd;
        stamp(ts, sizeof ts);
        /* Its welcome first (with who is here, itself included: the bench counts the
         * joins it is owed from it), then its own join with everyone's. */
        static char welcome[MAX_CONNS * (NAME_CAP + 3) + 256];
        size_t w = snprintf(welcome, 256,
                            "{\"type\":\"welcome\",\"protocol\":1,\"server\":\"floor/0\","
                            "\"name\":\"%s\",\"room\":\"lobby\",\"members\":[",
                            c->name);
        for (int i = 0; i < n_members; i++)
            w += sprintf(welcome + w, "%s\"%s\"", i ? "," : "", conns[members[i]]->name);
        w += sprintf(welcome + w, "],\"history\":[]}\n");
        send_to(c, welcome, w);
        int n = snprintf(out, sizeof out,
                     "{\"type\":\"join\",\"id\":%ld,\"ts\":\"%s\",\"room\":\"lobby\","
                     "\"name\":\"%s\"}\n",
                     next_id++, ts, c->name);
        publish(out, n);
    } else if (strstr(line, "\"type\":\"ping\"")) {
        if (field(line, "token", text, NAME_CAP) < 0) return;
        int n = snprintf(out, sizeof out, "{\"type\":\"pong\",\"token\":\"%s\"}\n", text);
        send_to(c, out, n);
    } else if (strstr(line, "\"type\":\"bye\"")) {
        drop(c);
    }
}

static void on_readable(conn_t *c) {
    for (;;) {
        ssize_t n = read(c->fd, c->in + c->in_len, IN_CAP - c->in_len);
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            drop(c);
            return;
        }
        if (n < 0) return;
        c->in_len += n;
        size_t start = 0;
        int fd = c->fd;
        for (size_t i = 0; i < c->in_len; i++) {
            if (c->in[i] != '\n') continue;
            c->in[i] = 0;
            handle_line(c, c->in + start);
            if (conns[fd] != c) return; /* it said bye */
            start = i + 1;
        }
        memmove(c->in, c->in + start, c->in_len - start);
        c->in_len -= start;
        if (c->in_len == IN_CAP) {
            drop(c); /* a line longer than anything the bench sends */
            return;
        }
    }
}

static void on_writable(conn_t *c) {
    ssize_t sent = write(c->fd, c->out, c->out_len);
    if (sent < 0) return;
    memmove(c->out, c->out + sent, c->out_len - sent);
    c->out_len -= sent;
    if (c->out_len == 0) {
        struct epoll_event ev = {.events = EPOLLIN, .data.fd = c->fd};
        epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [TRANSCRIPT [PACING]]\n", argv[0]);
        return 2;
    }
    double pacing = argc > 4 ? atof(argv[4]) : 0.0;
    int exact = argc > 5 && strcmp(argv[5], "exact") == 0;
    if (argc > 3) transcript_fd = open(argv[3], O_WRONLY | O_APPEND | O_CREAT, 0640);
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &addr.sin_addr);
    if (bind(ls, (struct sockaddr *)&addr, sizeof addr) || listen(ls, 4096)) {
        perror("listen");
        return 2;
    }
    epfd = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = ls};
    epoll_ctl(epfd, EPOLL_CTL_ADD, ls, &ev);
    static struct epoll_event ready[4096];
    int timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    struct epoll_event tev = {.events = EPOLLIN, .data.fd = timer_fd};
    epoll_ctl(epfd, EPOLL_CTL_ADD, timer_fd, &tev);
    double next_flush_at = 0;
    for (;;) {
        int timeout_ms = -1;
        if (batch_len) {
            double wait = next_flush_at - now_s();
            timeout_ms = wait > 0 ? (int)(wait * 1000) + 1 : 0;
            if (exact && wait > 0) {
                long ns = (long)(wait * 1e9);
                struct itimerspec at = {.it_value = {ns / 1000000000L, ns % 1000000000L}};
                timerfd_settime(timer_fd, 0, &at, NULL);
                timeout_ms = -1;
            }
        }
        int n = epoll_wait(epfd, ready, 4096, timeout_ms);
        for (int i = 0; i < n; i++) {
            int fd = ready[i].data.fd;
            if (fd == timer_fd) {
                uint64_t ticks;
                if (read(timer_fd, &ticks, sizeof ticks) < 0) continue;
                continue;
            }
            if (fd == ls) {
                int cfd;
                while ((cfd = accept4(ls, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (cfd >= MAX_CONNS) {
                        close(cfd);
                        continue;
                    }
                    setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    conn_t *c = calloc(1, sizeof *c);
                    c->fd = cfd;
                    c->in = malloc(IN_CAP);
                    conns[cfd] = c;
                    struct epoll_event cev = {.events = EPOLLIN, .data.fd = cfd};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &cev);
                }
                continue;
            }
            conn_t *c = conns[fd];
            if (c && (ready[i].events & EPOLLOUT)) on_writable(c);
            c = conns[fd];
            if (c && (ready[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))) on_readable(c);
        }
        if (batch_len && now_s() >= next_flush_at) {
            double started = now_s();
            flush();
            next_flush_at = now_s() + pacing * (now_s() - started);
        }
    }
}
