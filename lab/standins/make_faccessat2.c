/* Stand-in for GNU make on musl (Alpine 3.14): before spawning the recipe shell the C library
 * checks it with faccessat(AT_EACCESS), which musl and glibc >= 2.33 implement with the
 * faccessat2 syscall, falling back only on ENOSYS. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    if (faccessat(AT_FDCWD, "/bin/sh", X_OK, AT_EACCESS) < 0) {
        fprintf(stderr, "make: /bin/sh: %s\n", strerror(errno));
        return 2;
    }
    return 0;
}
