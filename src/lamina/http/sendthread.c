/* lamina_sendthread: the server's socket writes, made by a thread of their own, off the event loop.
 *
 * On a loaded server the event loop is the bound, and its send() calls are a fifth of its time: on
 * loopback TCP the sender's send() also runs the receiver's half of the stack and wakes the receiver.
 * This module takes those writes to a native thread that never holds the GIL, so they run on another CPU
 * while the loop goes on with the next request. Built by `make install` into build/ (optional: without it
 * the transports write, as before). Used by lamina/http/sender.py, which says when a write may come here.
 *
 *   start() -> bool                 start the thread (once; False if it cannot be started)
 *   submit(fd, data) -> bool        queue a copy of `data` for `fd`, written in the order submitted
 *   pending(fd) -> int              writes queued for `fd` and not yet fully written
 *   close(fd)                       close `fd` once everything queued for it before is written
 *
 * `fd` is the caller's own duplicate of a socket (its number stays taken until close() is done with it, so
 * a write can never reach a later connection that reuses the number). A socket that takes a write only in
 * part is written again when it has room (epoll), and writes queued meanwhile wait behind it; one the
 * peer has closed drops what is queued for it. Either way the other sockets' writes go on.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

struct job {
    struct job *next;
    int fd;
    int close;          /* a close() request, no data */
    size_t len, off;
    char data[];
};

struct backlog {        /* writes (and a close) waiting for a socket that had no room */
    struct job *head, *tail;
};

/* Submitted jobs, newest first: the caller pushes with one compare-and-swap, the thread takes the whole
 * list with one exchange. No lock: a thread preempted inside a critical section (the runtimes the loop
 * wakes share its CPU) would stall the event loop, GIL held, until it ran again. */
static struct job *inbox;
static int sleeping;    /* the thread waits (or is about to) in epoll_wait: a submit must kick the eventfd */
static int started;
static int kick_fd = -1, ep_fd = -1;
static size_t max_fd;   /* fds below it only */
static uint32_t *pending_by_fd;          /* written jobs are subtracted by the thread (atomics) */
static struct backlog *backlog_by_fd;    /* the thread's alone */

static void finish(struct job *j) {
    __atomic_sub_fetch(&pending_by_fd[j->fd], 1, __ATOMIC_RELEASE);
    free(j);
}

/* A close request: its count goes before the fd does, so a later socket given the same number (by the
 * caller's next dup) starts from zero. */
static void close_job(struct job *j) {
    int fd = j->fd;
    epoll_ctl(ep_fd, EPOLL_CTL_DEL, fd, NULL);
    finish(j);
    close(fd);
}

/* Write what `j` holds: 1 when all of it is out, 0 when the socket is full, -1 when the peer is gone
 * (the loop hears of that on its own side). */
static int write_job(struct job *j) {
    while (j->off < j->len) {
        ssize_t n = send(j->fd, j->data + j->off, j->len - j->off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0)
            j->off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    return 1;
}

static void backlog_push(struct job *j) {
    struct backlog *b = &backlog_by_fd[j->fd];
    j->next = NULL;
    if (b->tail)
        b->tail->next = j;
    else
        b->head = j;
    b->tail = j;
}

static struct job *backlog_pop(struct backlog *b) {
    struct job *j = b->head;
    b->head = j->next;
    if (!b->head)
        b->tail = NULL;
    return j;
}

/* Write a socket's backlog as far as it goes. Watched (EPOLLOUT) while anything is left; a broken socket
 * drops its writes; a close request closes it. */
static void drain(int fd) {
    struct backlog *b = &backlog_by_fd[fd];
    int broken = 0;
    while (b->head) {
        struct job *j = b->head;
        if (j->close) {
            close_job(backlog_pop(b));
            return;             /* nothing is queued after a close */
        }
        if (!broken) {
            int r = write_job(j);
            if (r == 0)
                return;
            broken = r < 0;
        }
        finish(backlog_pop(b));
    }
    epoll_ctl(ep_fd, EPOLL_CTL_DEL, fd, NULL);
}

static void handle(struct job *j) {
    int fd = j->fd;
    if (backlog_by_fd[fd].head) {   /* behind others that wait for room */
        backlog_push(j);
        return;
    }
    if (j->close) {
        close_job(j);
        return;
    }
    if (write_job(j) != 0) {
        finish(j);
        return;
    }
    backlog_push(j);
    struct epoll_event ev = {.events = EPOLLOUT, .data.fd = fd};
    if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, fd, &ev) < 0 && errno != EEXIST)
        finish(backlog_pop(&backlog_by_fd[fd]));   /* cannot wait for room: give the write up */
}

/* Everything submitted so far, oldest first; NULL when nothing is. */
static struct job *take_all(void) {
    struct job *j = __atomic_exchange_n(&inbox, NULL, __ATOMIC_SEQ_CST), *fifo = NULL;
    while (j) {
        struct job *next = j->next;
        j->next = fifo;
        fifo = j;
        j = next;
    }
    return fifo;
}

static void *run(void *arg) {
    (void)arg;
    struct epoll_event events[64];
    for (;;) {
        struct job *batch = take_all();
        if (!batch) {
            /* Say so before the last look: a submit either lands before it or sees the flag and kicks. */
            __atomic_store_n(&sleeping, 1, __ATOMIC_SEQ_CST);
            batch = take_all();
            if (batch)
                __atomic_store_n(&sleeping, 0, __ATOMIC_SEQ_CST);
        }
        if (batch) {
            while (batch) {
                struct job *next = batch->next;
                handle(batch);
                batch = next;
            }
            /* sockets that had no room may have some now: look without waiting */
            int n = epoll_wait(ep_fd, events, 64, 0);
            for (int i = 0; i < n; i++)
                if (events[i].data.fd != kick_fd)
                    drain(events[i].data.fd);
            continue;
        }
        int n = epoll_wait(ep_fd, events, 64, -1);
        __atomic_store_n(&sleeping, 0, __ATOMIC_SEQ_CST);
        for (int i = 0; i < n; i++) {
            if (events[i].data.fd == kick_fd) {
                uint64_t v;
                ssize_t r = read(kick_fd, &v, sizeof v);
                (void)r;
            } else {
                drain(events[i].data.fd);
            }
        }
    }
    return NULL;
}

static void enqueue(struct job *j) {
    __atomic_add_fetch(&pending_by_fd[j->fd], 1, __ATOMIC_RELAXED);
    struct job *head = __atomic_load_n(&inbox, __ATOMIC_RELAXED);
    do
        j->next = head;
    while (!__atomic_compare_exchange_n(&inbox, &head, j, 1, __ATOMIC_SEQ_CST, __ATOMIC_RELAXED));
    if (__atomic_exchange_n(&sleeping, 0, __ATOMIC_SEQ_CST)) {
        uint64_t one = 1;
        ssize_t r = write(kick_fd, &one, sizeof one);
        (void)r;
    }
}

static int fd_arg(PyObject *obj, int *fd) {
    long v = PyLong_AsLong(obj);
    if (v == -1 && PyErr_Occurred())
        return 0;
    if (v < 0 || (size_t)v >= max_fd) {
        PyErr_SetString(PyExc_ValueError, "fd out of range for the send thread");
        return 0;
    }
    *fd = (int)v;
    return 1;
}

static PyObject *m_start(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    if (started)
        Py_RETURN_TRUE;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        Py_RETURN_FALSE;
    max_fd = rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (1 << 20) ? (1 << 20) : (size_t)rl.rlim_cur;
    pending_by_fd = calloc(max_fd, sizeof *pending_by_fd);
    backlog_by_fd = calloc(max_fd, sizeof *backlog_by_fd);
    kick_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    ep_fd = epoll_create1(EPOLL_CLOEXEC);
    if (!pending_by_fd || !backlog_by_fd || kick_fd < 0 || ep_fd < 0)
        Py_RETURN_FALSE;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = kick_fd};
    if (epoll_ctl(ep_fd, EPOLL_CTL_ADD, kick_fd, &ev) < 0)
        Py_RETURN_FALSE;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_t thread;
    int err = pthread_create(&thread, &attr, run, NULL);
    pthread_attr_destroy(&attr);
    if (err)
        Py_RETURN_FALSE;
    pthread_setname_np(thread, "lamina-send");
    started = 1;
    Py_RETURN_TRUE;
}

static PyObject *m_submit(PyObject *self, PyObject *const *args, Py_ssize_t nargs) {
    (void)self;
    int fd;
    if (nargs != 2 || !started) {
        PyErr_SetString(PyExc_TypeError, "submit(fd, data) after start()");
        return NULL;
    }
    if (!fd_arg(args[0], &fd))
        return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    struct job *j = malloc(sizeof *j + (size_t)view.len);
    if (!j) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    j->fd = fd;
    j->close = 0;
    j->len = (size_t)view.len;
    j->off = 0;
    memcpy(j->data, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    enqueue(j);
    Py_RETURN_TRUE;
}

static PyObject *m_pending(PyObject *self, PyObject *arg) {
    (void)self;
    int fd;
    if (!started)
        return PyLong_FromLong(0);
    if (!fd_arg(arg, &fd))
        return NULL;
    return PyLong_FromUnsignedLong(__atomic_load_n(&pending_by_fd[fd], __ATOMIC_ACQUIRE));
}

static PyObject *m_close(PyObject *self, PyObject *arg) {
    (void)self;
    int fd;
    if (!started) {
        PyErr_SetString(PyExc_RuntimeError, "close(fd) after start()");
        return NULL;
    }
    if (!fd_arg(arg, &fd))
        return NULL;
    struct job *j = malloc(sizeof *j);
    if (!j)
        return PyErr_NoMemory();
    j->fd = fd;
    j->close = 1;
    j->len = j->off = 0;
    enqueue(j);
    Py_RETURN_NONE;
}

static PyObject *m_limit(PyObject *self, PyObject *noargs) {
    (void)self; (void)noargs;
    return PyLong_FromSize_t(max_fd);
}

static PyMethodDef methods[] = {
    {"start", m_start, METH_NOARGS, "Start the send thread (once); False if it cannot be started."},
    {"submit", (PyCFunction)(void (*)(void))m_submit, METH_FASTCALL, "Queue a copy of data for fd."},
    {"pending", m_pending, METH_O, "Writes queued for fd and not yet fully written."},
    {"close", m_close, METH_O, "Close fd once everything queued for it before is written."},
    {"limit", m_limit, METH_NOARGS, "fds below this number only."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "lamina_sendthread", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit_lamina_sendthread(void) {
    return PyModule_Create(&module);
}
