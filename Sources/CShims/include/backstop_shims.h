#ifndef BACKSTOP_SHIMS_H
#define BACKSTOP_SHIMS_H
/* The only C code Backstop carries: calls Swift cannot make directly, and the build commit. */
#include <curl/curl.h>
#include <spawn.h>

/* pipe2(O_CLOEXEC) and posix_spawn_file_actions_addchdir_np need _GNU_SOURCE, which Swift's
   Glibc module does not define. */
int backstop_pipe_cloexec(int fds[2]);
int backstop_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/* Starts `path` in its own process group with stdin/stdout/stderr from the given descriptors.
   It dies with Backstop, however Backstop dies: PR_SET_PDEATHSIG(SIGKILL) for the child, and a
   watchdog process that kills the child's whole process group (pg_restore's workers too) when
   Backstop is gone. Returns the pid, or -1 with the errno (of fork, or of the child's setup or
   execve) in *err_out. Wait for it with backstop_wait_child and the watchdog and guard returned. */
pid_t backstop_spawn_child(const char *path, char *const argv[], char *const envp[],
                           int in_fd, int out_fd, int err_fd, const char *chdir_to,
                           pid_t *watchdog_out, int *guard_out, int *err_out);

/* Waits for a child of backstop_spawn_child, dismisses its watchdog, and reaps it. */
int backstop_wait_child(pid_t pid, pid_t watchdog, int guard_fd, int *status);

/* openat2(2) has no glibc wrapper: opens `path` below `dirfd` with RESOLVE_BENEATH |
   RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS. Returns a descriptor, or -1 with errno (ENOSYS
   where the kernel lacks openat2). */
int backstop_openat2_beneath(int dirfd, const char *path, int flags);

/* Switches the calling thread's character set (uselocale) to the C locale's (utf8 = 0) or to
   C.UTF-8 (utf8 = 1) and returns the previous thread locale for backstop_restore_locale; NULL if
   that failed. libarchive converts names through it: see Targets/Native/LibArchive.swift. */
void *backstop_use_ctype(int utf8);
void backstop_restore_locale(void *previous);

/* curl_easy_setopt is variadic and cannot be called from Swift.
   These typed wrappers are the only C code Backstop carries for libcurl. */
typedef size_t (*backstop_curl_data_cb)(char *ptr, size_t size, size_t nmemb, void *userdata);

CURLcode backstop_curl_set_long(CURL *handle, CURLoption option, long value);
CURLcode backstop_curl_set_string(CURL *handle, CURLoption option, const char *value);
CURLcode backstop_curl_set_pointer(CURL *handle, CURLoption option, void *value);
CURLcode backstop_curl_set_slist(CURL *handle, CURLoption option, struct curl_slist *value);
CURLcode backstop_curl_set_data_callback(CURL *handle, CURLoption option, backstop_curl_data_cb cb);
CURLcode backstop_curl_get_response_code(CURL *handle, long *code);

/* The git commit the binary was built from ("unknown" unless scripts/package linked it in). */
const char *backstop_build_commit_id(void);

#endif
