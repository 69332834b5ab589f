/* liblamina-spawn.so: a forked Python environment's sandbox made by C code instead of a copy of the zygote.
 *
 * The zygote (runtimes/python/zygote.py) calls lamina_spawn() through ctypes, holding the GIL. It clones
 * the environment's init as pid 1 of new pid, ipc and uts namespaces with CLONE_VM | CLONE_VFORK: the init
 * shares the zygote's memory (no copy of its page tables, no copy-on-write faults, nothing to tear down
 * when it execs) and runs this file's code on a stack of its own while the zygote waits. The init
 *
 *   joins the environment's network namespace (if private) and cgroups; makes its own mounts (code,
 *   layers, /tmp volume) detached on the host (open_tree, fsopen/fsmount); takes a private copy of the
 *   runtime's template mount namespace and moves them in; mounts devpts, tmpfs and /proc (the kernel's
 *   knobs read-only), exactly as zygote.py's _sandbox does;
 *   forks the runtime: a copy of the zygote's memory as it is, waiting inside this call. The runtime
 *   longjmps back into the zygote's frame, so lamina_spawn() returns 0 in it and the zygote's Python
 *   goes on as the runtime (what os.fork() gives, inside the sandbox);
 *   and execs lamina-init (init.c), which reaps and reports. (It writes "+", made, to the status pipe
 *   first, as the zygote does for a Python init.)
 *
 * The zygote resumes when the init has exec'd (or died), and lamina_spawn() returns the init's pid.
 * A failure before the runtime exists is written to the environment's output ("lamina zygote: cannot
 * make the sandbox: ...") and to its status pipe ("126\n"). Measured in a burst of 400 environments:
 * the init's CPU, ~3.6 ms with the Python init (mostly page faults, its copy of the zygote's page
 * tables and their teardown at exec), is what this saves (docs/benchmarks.md).
 *
 * Built by `make install`: cc -O2 -shared -fPIC -U_FORTIFY_SOURCE -o build/liblamina-spawn.so spawn.c
 * (no fortified longjmp: it refuses a jump from another stack). Optional: without it the init is Python.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef SYS_open_tree
#define SYS_open_tree 428
#define SYS_move_mount 429
#define SYS_fsopen 430
#define SYS_fsconfig 431
#define SYS_fsmount 432
#endif
#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#define OPEN_TREE_CLONE_ 1
#define AT_RECURSIVE_ 0x8000
#define MOVE_MOUNT_F_EMPTY_PATH_ 4
#define FSOPEN_CLOEXEC_ 1
#define FSCONFIG_SET_FLAG_ 0
#define FSCONFIG_SET_STRING_ 1
#define FSCONFIG_CMD_CREATE_ 6
#define FSMOUNT_CLOEXEC_ 1
#define MOUNT_ATTR_RDONLY_ 1
#define MOUNT_ATTR_NOSUID_ 2
#define MOUNT_ATTR_NODEV_ 4
#define STACK_SIZE (256 * 1024)
#define MAX_MOVES 16

struct mount_attr_ {
    uint64_t attr_set, attr_clr, propagation, userns_fd;
};

/* What the zygote hands over (zygote.py builds it with ctypes; every string stays alive during the call). */
struct lamina_plan {
    int output_fd, channel_fd, status_fd, lifeline_fd, template_fd, init_fd;
    const char *netns;                /* "" when the environment shares the host's network */
    const char *const *cgroup_procs;  /* NULL-terminated */
    const char *const *ops;           /* 5 strings per operation, ended by a NULL kind (see zygote.py) */
};

static jmp_buf zygote_frame;

/* Report a failure of the init's own (no runtime yet) and end it: the zygote then returns its pid, and
 * lamina reads 126 from the status pipe. */
static void fail(const struct lamina_plan *plan, const char *what, const char *path) {
    char line[512];
    int n = snprintf(line, sizeof line, "lamina zygote: cannot make the sandbox: %s%s%s: %s\n", what,
                     path ? " " : "", path ? path : "", strerror(errno));
    if (n > 0 && write(plan->output_fd, line, (size_t)n < sizeof line ? (size_t)n : sizeof line - 1) < 0) {
    }
    if (write(plan->status_fd, "126\n", 4) < 0) {
    }
    _exit(126);
}

static void close_all_but(const int *keep, int count) {
    /* fds above 2 not in `keep`: the zygote's socket, the template keeper's pipe, another request's */
    int sorted[8], n = 0;
    for (int i = 0; i < count; i++)
        if (keep[i] > 2) sorted[n++] = keep[i];
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            int t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    unsigned int from = 3;
    for (int i = 0; i < n; i++) {
        if ((unsigned int)sorted[i] > from) syscall(SYS_close_range, from, (unsigned int)sorted[i] - 1, 0);
        from = (unsigned int)sorted[i] + 1;
    }
    syscall(SYS_close_range, from, ~0U, 0);
}

/* One of the environment's own mounts, made on the host and attached to nothing yet. */
static int detached(const struct lamina_plan *plan, const char *const *op) {
    if (strcmp(op[0], "bind") == 0) {
        int fd = (int)syscall(SYS_open_tree, AT_FDCWD, op[1], OPEN_TREE_CLONE_ | O_CLOEXEC | AT_RECURSIVE_);
        if (fd < 0) fail(plan, "open_tree", op[1]);
        struct mount_attr_ attrs = {MOUNT_ATTR_NOSUID_ | MOUNT_ATTR_NODEV_ | (op[3][0] ? MOUNT_ATTR_RDONLY_ : 0), 0, 0, 0};
        if (syscall(SYS_mount_setattr, fd, "", AT_EMPTY_PATH | AT_RECURSIVE_, &attrs, sizeof attrs) < 0)
            fail(plan, "mount_setattr", op[1]);
        return fd;
    }
    int context = (int)syscall(SYS_fsopen, op[3], FSOPEN_CLOEXEC_);
    if (context < 0) fail(plan, "fsopen", op[3]);
    if (syscall(SYS_fsconfig, context, FSCONFIG_SET_STRING_, "source", op[1], 0) < 0) fail(plan, "fsconfig source", op[1]);
    char options[256];
    snprintf(options, sizeof options, "%s", op[4]);
    for (char *save = NULL, *option = strtok_r(options, ",", &save); option; option = strtok_r(NULL, ",", &save)) {
        char *value = strchr(option, '=');
        if (value) *value++ = '\0';
        if (syscall(SYS_fsconfig, context, value ? FSCONFIG_SET_STRING_ : FSCONFIG_SET_FLAG_, option, value, 0) < 0)
            fail(plan, "fsconfig", option);
    }
    if (syscall(SYS_fsconfig, context, FSCONFIG_CMD_CREATE_, NULL, NULL, 0) < 0) fail(plan, "mount", op[1]);
    int fd = (int)syscall(SYS_fsmount, context, FSMOUNT_CLOEXEC_, MOUNT_ATTR_NOSUID_ | MOUNT_ATTR_NODEV_);
    if (fd < 0) fail(plan, "fsmount", op[1]);
    close(context);
    return fd;
}

static void mount_or_fail(const struct lamina_plan *plan, const char *source, const char *target, const char *type,
                          unsigned long flags, const char *data) {
    if (mount(source, target, type, flags, data) < 0) fail(plan, "mount", target);
}

static int init_main(void *arg) {
    const struct lamina_plan *plan = arg;
    if (write(plan->status_fd, "+", 1) != 1) _exit(125); /* made: from now on lamina hears the init */
    int keep[] = {plan->output_fd, plan->channel_fd, plan->status_fd, plan->lifeline_fd, plan->template_fd, plan->init_fd};
    close_all_but(keep, 6);
    if (plan->netns[0]) {
        int net = open(plan->netns, O_RDONLY | O_CLOEXEC);
        if (net < 0 || setns(net, CLONE_NEWNET) < 0) fail(plan, "setns net", plan->netns);
        close(net);
    }
    for (const char *const *procs = plan->cgroup_procs; *procs; procs++) { /* "0": the writer */
        int fd = open(*procs, O_WRONLY | O_CLOEXEC);
        if (fd < 0 || write(fd, "0", 1) != 1) fail(plan, "join cgroup", *procs);
        close(fd);
    }
    int moves[MAX_MOVES];
    const char *targets[MAX_MOVES];
    int count = 0;
    for (const char *const *op = plan->ops; op[0]; op += 5) {
        if (strcmp(op[0], "bind") != 0 && strcmp(op[0], "mount") != 0) continue;
        if (count == MAX_MOVES) {
            errno = E2BIG;
            fail(plan, "mounts", NULL);
        }
        moves[count] = detached(plan, op);
        targets[count++] = op[2];
    }
    if (setns(plan->template_fd, CLONE_NEWNS) < 0) fail(plan, "setns mnt", NULL); /* root, cwd: the template's */
    if (unshare(CLONE_NEWNS) < 0) fail(plan, "unshare mnt", NULL);
    for (int i = 0; i < count; i++) {
        if (syscall(SYS_move_mount, moves[i], "", AT_FDCWD, targets[i], MOVE_MOUNT_F_EMPTY_PATH_) < 0)
            fail(plan, "move_mount", targets[i]);
        close(moves[i]);
    }
    for (const char *const *op = plan->ops; op[0]; op += 5) {
        if (strcmp(op[0], "devpts") == 0) {
            mount_or_fail(plan, "devpts", op[1], "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620");
        } else if (strcmp(op[0], "tmpfs") == 0) {
            char data[96];
            snprintf(data, sizeof data, "mode=%s%s%s", op[2], op[3][0] ? ",size=" : "", op[3]);
            mount_or_fail(plan, "tmpfs", op[1], "tmpfs", MS_NOSUID | MS_NODEV, data);
        } else if (strcmp(op[0], "bind") != 0 && strcmp(op[0], "mount") != 0) {
            errno = EINVAL;
            fail(plan, "unknown mount operation", op[0]);
        }
    }
    if (chdir("/") < 0) fail(plan, "chdir", "/");
    mount_or_fail(plan, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    static const char *const knobs[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus"};
    for (size_t i = 0; i < sizeof knobs / sizeof *knobs; i++) { /* the kernel's knobs read-only, as bubblewrap does */
        if (access(knobs[i], F_OK) != 0) continue;
        mount_or_fail(plan, knobs[i], knobs[i], NULL, MS_BIND | MS_REC, NULL);
        mount_or_fail(plan, "none", knobs[i], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
    }
    /* The zygote ignores SIGCHLD (the kernel reaps its inits): the init must hear its runtime end, and an
     * ignored signal would stay ignored across the exec of lamina-init. */
    struct sigaction dfl = {.sa_handler = SIG_DFL};
    if (sigaction(SIGCHLD, &dfl, NULL) < 0) fail(plan, "sigaction", "SIGCHLD");
    long runtime = syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0); /* fork, without libc's bookkeeping */
    if (runtime < 0) fail(plan, "fork the runtime", NULL);
    if (runtime == 0) longjmp(zygote_frame, 1); /* the runtime: back into the zygote's frame, as its copy */
    close(plan->output_fd);
    if (plan->channel_fd >= 0) close(plan->channel_fd); /* the runtime's alone: lamina hears EOF when it ends */
    if (fcntl(plan->status_fd, F_SETFD, 0) < 0 || fcntl(plan->lifeline_fd, F_SETFD, 0) < 0) {
        kill((pid_t)runtime, SIGKILL);
        _exit(125);
    }
    char status[24], lifeline[24], pid[24];
    snprintf(status, sizeof status, "%d", plan->status_fd);
    snprintf(lifeline, sizeof lifeline, "%d", plan->lifeline_fd);
    snprintf(pid, sizeof pid, "%ld", runtime);
    char *const argv[] = {"lamina-init", status, lifeline, pid, NULL};
    char *const envp[] = {NULL};
    syscall(SYS_execveat, plan->init_fd, "", argv, envp, AT_EMPTY_PATH);
    kill((pid_t)runtime, SIGKILL); /* no init to reap it: the environment cannot run */
    _exit(125);
}

/* In the zygote: the init's pid (> 0), or -1 with errno when it could not be cloned. In the runtime: 0. */
long lamina_spawn(const struct lamina_plan *plan) {
    if (setjmp(zygote_frame)) return 0;
    char *stack = mmap(NULL, STACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (stack == MAP_FAILED) return -1;
    int flags = CLONE_VM | CLONE_VFORK | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | SIGCHLD;
    int pid = clone(init_main, stack + STACK_SIZE, flags, (void *)plan);
    int saved = errno;
    munmap(stack, STACK_SIZE);
    errno = saved;
    return pid < 0 ? -1 : pid;
}
