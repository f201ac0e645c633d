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

void *backstop_use_c_ctype(void) {
    static locale_t c_locale = (locale_t)0;
    if (c_locale == (locale_t)0) c_locale = newlocale(LC_CTYPE_MASK, "C", (locale_t)0);
    if (c_locale == (locale_t)0) return NULL;
    return (void *)uselocale(c_locale);
}

void backstop_restore_locale(void *previous) {
    if (previous != NULL) uselocale((locale_t)previous);
}
