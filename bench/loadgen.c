/* bench/loadgen.c: a closed-loop HTTP/1.1 load generator for bench/invoke_bench.py (built on first use
 * into build/loadgen; invoke_bench.py --loadgen c).
 *
 * Usage: loadgen PORT CLIENTS SECONDS REQUEST_FILE EXPECT
 *
 * Opens CLIENTS keep-alive connections to 127.0.0.1:PORT; each sends the bytes of REQUEST_FILE (one
 * complete request), reads the response (Content-Length bodies only), and sends the request again, until
 * SECONDS have passed. A response counts as done when its status is 200 and its body contains EXPECT,
 * else as an error. Prints one JSON object: {"rps", "errors", "p50_ms", "p99_ms", "done", "elapsed_s"}: the
 * same figures as invoke_bench's asyncio client, for ~20 us of host CPU per request instead of ~50 (on a
 * 2-CPU host the load generator's CPU is taken from the server under test).
 *
 * SECONDS 0 is a burst (bench/burst_bench.py): every connection sends its request once and closes after
 * the answer; the program ends when all are answered (or broken).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUF 65536

struct conn {
    int fd;
    size_t sent;       /* bytes of the request written so far */
    size_t have;       /* bytes of the response read so far */
    double started;    /* when the request's first byte was written */
    char buf[BUF];
};

static char *request;
static size_t request_len;
static const char *expect;
static double *latencies;
static size_t n_lat, cap_lat;
static long done, errors;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *what) {
    perror(what);
    exit(2);
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void record(double ms) {
    if (n_lat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 65536;
        latencies = realloc(latencies, cap_lat * sizeof *latencies);
        if (!latencies) die("realloc");
    }
    latencies[n_lat++] = ms;
}

/* Write what is left of the request; 0 once all of it is out, 1 if the socket is full, -1 on error. */
static int send_rest(struct conn *c) {
    while (c->sent < request_len) {
        ssize_t n = send(c->fd, request + c->sent, request_len - c->sent, MSG_NOSIGNAL);
        if (n < 0)
            return errno == EAGAIN ? 1 : -1;
        c->sent += n;
    }
    return 0;
}

/* Length of a complete response at the start of c->buf, 0 if more bytes are needed, -1 if unreadable. */
static long complete(struct conn *c) {
    char *end = memmem(c->buf, c->have, "\r\n\r\n", 4);
    if (!end)
        return c->have == BUF ? -1 : 0;
    long length = 0;
    for (char *line = memchr(c->buf, '\n', end - c->buf); line && line < end; line = memchr(line, '\n', end - line)) {
        line++;
        if (strncasecmp(line, "content-length:", 15) == 0)
            length = strtol(line + 15, NULL, 10);
    }
    long total = (end + 4 - c->buf) + length;
    if (total > BUF)
        return -1;
    return (size_t)total <= c->have ? total : 0;
}

static void judge(struct conn *c, long total, double t) {
    size_t head = (char *)memmem(c->buf, c->have, "\r\n\r\n", 4) - c->buf + 4;
    int ok = c->have >= 12 && memcmp(c->buf + 8, " 200 ", 5) == 0 &&
             memmem(c->buf + head, total - head, expect, strlen(expect)) != NULL;
    if (ok) {
        done++;
        record((t - c->started) * 1000);
    } else {
        errors++;
    }
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s PORT CLIENTS SECONDS REQUEST_FILE EXPECT\n", argv[0]);
        return 2;
    }
    int port = atoi(argv[1]), clients = atoi(argv[2]);
    double seconds = atof(argv[3]);
    expect = argv[5];
    FILE *f = fopen(argv[4], "rb");
    if (!f) die("request file");
    request = malloc(BUF);
    request_len = fread(request, 1, BUF, f);
    fclose(f);

    struct rlimit rl;  /* a burst opens a connection per request: as many descriptors as allowed */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int ep = epoll_create1(0);
    if (ep < 0) die("epoll_create1");
    struct conn *conns = calloc(clients, sizeof *conns);
    if (!conns) die("calloc");
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    double start = now(), stop = start + seconds;
    for (int i = 0; i < clients; i++) {
        struct conn *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (c->fd < 0) die("socket");
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect");
        if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) < 0) die("fcntl");
        c->started = now();
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        if (send_rest(c) > 0)
            ev.events |= EPOLLOUT;
        if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
    }
    int open_conns = clients;
    struct epoll_event events[256];
    while (open_conns > 0) {
        int n = epoll_wait(ep, events, 256, 100);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        double t = now();
        for (int i = 0; i < n; i++) {
            struct conn *c = events[i].data.ptr;
            if (c->fd < 0)
                continue;
            if (events[i].events & EPOLLOUT) {
                int r = send_rest(c);
                if (r < 0) goto broken;
                if (r == 0) {
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
            }
            if (!(events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                continue;
            ssize_t got = recv(c->fd, c->buf + c->have, BUF - c->have, 0);
            if (got < 0 && errno == EAGAIN)
                continue;
            if (got <= 0) goto broken;
            c->have += got;
            long total = complete(c);
            if (total < 0) goto broken;
            if (total == 0)
                continue;
            judge(c, total, t);
            memmove(c->buf, c->buf + total, c->have - total);
            c->have -= total;
            if (t >= stop) {
                close(c->fd);
                c->fd = -1;
                open_conns--;
                continue;
            }
            c->sent = 0;
            c->started = t;
            if (send_rest(c) < 0) goto broken;
            if (c->sent < request_len) {
                struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
                epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
            }
            continue;
        broken:
            errors++;
            close(c->fd);
            c->fd = -1;
            open_conns--;
        }
    }
    double elapsed = now() - start;
    qsort(latencies, n_lat, sizeof *latencies, cmp);
    double p50 = n_lat ? latencies[(size_t)(n_lat * 0.50)] : 0, p99 = n_lat ? latencies[(size_t)(n_lat * 0.99)] : 0;
    printf("{\"rps\": %ld, \"errors\": %ld, \"p50_ms\": %.2f, \"p99_ms\": %.2f, \"done\": %ld, \"elapsed_s\": %.3f}\n",
           (long)(done / elapsed + 0.5), errors, p50, p99, done, elapsed);
    return 0;
}
