/* lamina-init: pid 1 of a forked Python environment's pid namespace, once its runtime is running.
 *
 * The zygote's clone child (runtimes/python/zygote.py) makes the environment, forks the runtime and then
 * execs this in its own place, so that pid 1 holds ~100 KB instead of a copy of the zygote's Python
 * (~1.2 MB of private pages per environment). It does what that Python loop did:
 *
 *     lamina-init STATUS_FD LIFELINE_FD RUNTIME_PID
 *
 * reaps every child (the runtime, and the orphans the namespace hands to its init); when the runtime
 * ends, writes its exit status to STATUS_FD ("3\n"; a signal is negative: "-9\n") and exits, which ends
 * whatever is left in the namespace; exits too when LIFELINE_FD reports EOF (lamina is gone).
 * Exit codes of its own: 0 done, 125 a failure of its own (bad arguments, no children left).
 * Built by `make install` (static, no dependencies): cc -O2 -static -o build/lamina-init init.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

static int number(const char *text) {
    char *end;
    long value = strtol(text, &end, 10);
    return (*text && !*end && value >= 0 && value < (1L << 30)) ? (int)value : -1;
}

int main(int argc, char **argv) {
    if (argc != 4) return 125;
    int status_fd = number(argv[1]), lifeline_fd = number(argv[2]), runtime = number(argv[3]);
    if (status_fd < 0 || lifeline_fd < 0 || runtime <= 0) return 125;

    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0) return 125;
    int signals = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
    if (signals < 0) return 125;
    struct pollfd watched[2] = {{signals, POLLIN, 0}, {lifeline_fd, POLLIN, 0}};

    for (;;) {
        for (;;) { /* whatever has ended: the runtime (perhaps before this started), or orphans */
            int status;
            pid_t pid = waitpid(-1, &status, WNOHANG);
            if (pid < 0) {
                if (errno == EINTR) continue;
                return 125; /* ECHILD: the runtime is not ours */
            }
            if (pid == 0) break;
            if (pid == runtime) {
                int code = WIFSIGNALED(status) ? -WTERMSIG(status) : WEXITSTATUS(status);
                char line[16];
                int n = snprintf(line, sizeof line, "%d\n", code);
                if (write(status_fd, line, (size_t)n) < 0) return 125;
                return 0;
            }
        }
        if (poll(watched, 2, -1) < 0 && errno != EINTR) return 125;
        if (watched[1].revents) return 0; /* readable only at EOF: lamina is gone */
        if (watched[0].revents) {
            struct signalfd_siginfo info;
            while (read(signals, &info, sizeof info) > 0) {
            }
        }
    }
}
