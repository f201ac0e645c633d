#include "backstop_shims.h"

/* The default for a plain `swift build`. scripts/package compiles an object holding a strong
   definition with the git commit and links it into the executables, which replaces this one. */
__attribute__((weak)) const char backstop_build_commit[] = "unknown";

const char *backstop_build_commit_id(void) { return backstop_build_commit; }
