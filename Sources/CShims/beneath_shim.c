#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <locale.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "backstop_shims.h"

int backstop_openat2_beneath(int dirfd, const char *path, int flags) {
#ifdef SYS_openat2
    struct open_how how;
    memset(&how, 0, sizeof how);
    how.flags = (unsigned long long)flags;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    return (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
#else
    (void)dirfd; (void)path; (void)flags;
    errno = ENOSYS;
    return -1;
#endif
}

void *backstop_use_ctype(int utf8) {
    static locale_t locales[2] = {(locale_t)0, (locale_t)0};
    int i = utf8 ? 1 : 0;
    if (locales[i] == (locale_t)0) locales[i] = newlocale(LC_CTYPE_MASK, utf8 ? "C.UTF-8" : "C", (locale_t)0);
    if (locales[i] == (locale_t)0) return NULL;
    return (void *)uselocale(locales[i]);
}

void backstop_restore_locale(void *previous) {
    if (previous != NULL) uselocale((locale_t)previous);
}
