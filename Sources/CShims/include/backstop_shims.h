#ifndef BACKSTOP_SHIMS_H
#define BACKSTOP_SHIMS_H
/* The only C code Backstop carries: calls Swift cannot make directly, and the build commit. */
#include <curl/curl.h>
#include <spawn.h>

/* pipe2(O_CLOEXEC) and posix_spawn_file_actions_addchdir_np need _GNU_SOURCE, which Swift's
   Glibc module does not define. */
int backstop_pipe_cloexec(int fds[2]);
int backstop_spawn_addchdir(posix_spawn_file_actions_t *actions, const char *path);

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
