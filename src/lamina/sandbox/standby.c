/* lamina-standby: a `provided` runtime's standby. A custom runtime's bootstrap is the function's own
 * program, so nothing of it can start before a function is assigned; what can is everything around it
 * (namespaces, cgroup, /tmp, the Runtime API endpoint). This waits in lamina's standby call, takes the
 * function's variables, and execs the function's bootstrap in its own place (same pid, same sandbox):
 *
 *     lamina-standby      (AWS_LAMBDA_RUNTIME_API=host:port, LAMBDA_TASK_ROOT=/var/task in the environment)
 *
 * GET /2018-06-01/lamina/standby?format=env answers NAME=VALUE entries, each ended by a NUL byte.
 * Exit codes of its own: 125 no assignment (lamina went away, a bad answer), 127 the bootstrap cannot be
 * executed. Built by `make install` (static, no dependencies): cc -O2 -static -o build/lamina-standby standby.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define LIMIT (1 << 20) /* Lambda's environment variables total at most 4 KB; lamina's own add a few */

static int fail(int code, const char *what) {
    fprintf(stderr, "lamina-standby: %s: %s\n", what, errno ? strerror(errno) : "unexpected answer");
    return code;
}

static int connect_to(const char *api) {
    char host[64];
    const char *colon = strrchr(api, ':');
    if (colon == NULL || (size_t)(colon - api) >= sizeof host) return -1;
    memcpy(host, api, colon - api);
    host[colon - api] = 0;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) return -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        close(fd);
        return -1;
    }
    return fd;
}

int main(int argc, char **argv) {
    (void)argc;
    const char *api = getenv("AWS_LAMBDA_RUNTIME_API");
    errno = 0;
    if (api == NULL) return fail(125, "no AWS_LAMBDA_RUNTIME_API");
    int fd = connect_to(api);
    if (fd < 0) return fail(125, "cannot connect to the Runtime API");
    static const char ask[] = "GET /2018-06-01/lamina/standby?format=env HTTP/1.1\r\nHost: runtime\r\n"
                              "Connection: close\r\n\r\n";
    if (write(fd, ask, sizeof ask - 1) != (ssize_t)(sizeof ask - 1)) return fail(125, "cannot ask");

    char *reply = malloc(LIMIT + 1);
    size_t got = 0;
    ssize_t n;
    if (reply == NULL) return fail(125, "no memory");
    while (got < LIMIT && (n = read(fd, reply + got, LIMIT - got)) != 0) {
        if (n < 0) {
            if (errno == EINTR) continue;
            return fail(125, "cannot read the assignment");
        }
        got += (size_t)n;
    }
    close(fd);
    reply[got] = 0;
    errno = 0;
    if (got < 12 || memcmp(reply, "HTTP/1.1 200", 12) != 0) return fail(125, "no assignment");
    char *body = memmem(reply, got, "\r\n\r\n", 4);
    if (body == NULL) return fail(125, "no assignment");
    body += 4;
    char *end = reply + got;

    unsetenv("LAMINA_STANDBY");
    for (char *entry = body; entry < end;) {
        char *stop = memchr(entry, 0, (size_t)(end - entry));
        if (stop == NULL) return fail(125, "a truncated assignment");
        char *eq = strchr(entry, '=');
        if (eq != NULL && eq != entry) {
            *eq = 0;
            if (setenv(entry, eq + 1, 1) != 0) return fail(125, "cannot set a variable");
        }
        entry = stop + 1;
    }

    const char *root = getenv("LAMBDA_TASK_ROOT");
    char path[4096];
    snprintf(path, sizeof path, "%s/bootstrap", root ? root : "/var/task");
    if (access(path, X_OK) != 0) /* the function's own, else its layers' (as Lambda looks for it) */
        snprintf(path, sizeof path, "/opt/bootstrap");
    if (chdir(root ? root : "/var/task") != 0) return fail(127, "cannot enter the task root");
    argv[0] = path;
    execv(path, argv);
    return fail(127, path);
}
