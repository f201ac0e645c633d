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
#include <sys/types.h>

/* fork + exec with what posix_spawn cannot do: the child gets SIGKILL when the thread that
   started it dies (PR_SET_PDEATHSIG), so a `kill -9` of Backstop never leaves a pg_restore
   loading on its own. Between fork and exec only async-signal-safe calls are made. */
pid_t backstop_spawn_child(const char *path, char *const argv[], char *const envp[],
                           int in_fd, int out_fd, int err_fd, const char *chdir_to, int *err_out) {
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
    return pid;
}
