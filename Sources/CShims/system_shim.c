#define _GNU_SOURCE
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>
#include "backstop_shims.h"

int backstop_pipe_cloexec(int fds[2]) { return pipe2(fds, O_CLOEXEC); }
int backstop_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>

/* fork + exec with what posix_spawn cannot do: the child (and everything it forks, such as
   pg_restore's parallel workers) dies with Backstop, even on `kill -9`.
   - The child runs in its own process group and gets PR_SET_PDEATHSIG(SIGKILL).
   - A watchdog process (forked from us, holding no descriptor but the read end of a pipe whose
     only write end we keep) wakes when that pipe reaches end-of-file, which happens when we
     die however we die, and then kills the child's whole process group. When the child ends
     normally, backstop_wait_child tells the watchdog so before reaping the child, and the
     watchdog exits without killing anything.
   Between fork and exec (or _exit) only async-signal-safe calls are made. */
static void close_from(int lowest) {
    if (syscall(SYS_close_range, lowest, ~0U, 0) == 0) return;
    for (int fd = lowest; fd < 65536; fd++) close(fd);
}

pid_t backstop_spawn_child(const char *path, char *const argv[], char *const envp[],
                           int in_fd, int out_fd, int err_fd, const char *chdir_to,
                           pid_t *watchdog_out, int *guard_out, int *err_out) {
    int report[2];
    if (pipe2(report, O_CLOEXEC) != 0) { *err_out = errno; return -1; }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) { *err_out = errno; close(report[0]); close(report[1]); return -1; }
    if (pid == 0) {
        int e = 0;
        if (setpgid(0, 0) != 0) e = errno;
        if (!e && prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) e = errno;
        /* The parent may have died between fork and prctl: then nobody would kill us. */
        if (!e && getppid() != parent) _exit(127);
        if (!e && dup2(in_fd, 0) < 0) e = errno;
        if (!e && dup2(out_fd, 1) < 0) e = errno;
        if (!e && dup2(err_fd, 2) < 0) e = errno;
        if (!e && chdir_to && chdir(chdir_to) != 0) e = errno;
        if (!e) {
            struct sigaction dfl;
            memset(&dfl, 0, sizeof dfl);
            dfl.sa_handler = SIG_DFL;
            sigaction(SIGINT, &dfl, 0);
            sigaction(SIGTERM, &dfl, 0);
            sigaction(SIGPIPE, &dfl, 0);
            sigaction(SIGHUP, &dfl, 0);
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, 0);
            execve(path, argv, envp);
            e = errno;
        }
        ssize_t unused = write(report[1], &e, sizeof e);
        (void)unused;
        _exit(127);
    }
    close(report[1]);
    int child_errno = 0;
    ssize_t n;
    do { n = read(report[0], &child_errno, sizeof child_errno); } while (n < 0 && errno == EINTR);
    close(report[0]);
    if (n == (ssize_t)sizeof child_errno) {
        int status;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        *err_out = child_errno;
        return -1;
    }

    *watchdog_out = -1;
    *guard_out = -1;
    int guard[2];
    if (pipe2(guard, O_CLOEXEC) != 0) return pid;   /* PR_SET_PDEATHSIG still covers the child */
    pid_t watchdog = fork();
    if (watchdog < 0) { close(guard[0]); close(guard[1]); return pid; }
    if (watchdog == 0) {
        /* Keep nothing but the guard: a copy of another pipe's write end would keep a child
           waiting for end-of-file forever. */
        if (dup2(guard[0], 0) < 0) _exit(1);
        close_from(1);
        char byte;
        ssize_t got;
        do { got = read(0, &byte, 1); } while (got < 0 && errno == EINTR);
        if (got <= 0) kill(-pid, SIGKILL);   /* Backstop is gone: so is everything it started */
        _exit(0);
    }
    close(guard[0]);
    *watchdog_out = watchdog;
    *guard_out = guard[1];
    return pid;
}

int backstop_wait_child(pid_t pid, pid_t watchdog, int guard_fd, int *status) {
    if (watchdog > 0) {
        /* Wait without reaping: while the child is a zombie its pid (and process group id)
           cannot be reused, so the watchdog can never signal a stranger. */
        siginfo_t info;
        while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR) {}
        char done = 'x';
        ssize_t unused = write(guard_fd, &done, 1);
        (void)unused;
        close(guard_fd);
        int ws;
        while (waitpid(watchdog, &ws, 0) < 0 && errno == EINTR) {}
    } else if (guard_fd >= 0) {
        close(guard_fd);
    }
    pid_t r;
    while ((r = waitpid(pid, status, 0)) < 0 && errno == EINTR) {}
    return r < 0 ? -1 : 0;
}
