/* The reproducer from gitpod-io/gitpod#4652, with fusermount's error line. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void) {
    long fd = syscall(SYS_openat, AT_FDCWD, "/dev/fuse", O_RDWR);
    if (fd < 0) {
        fprintf(stderr, "fuse: failed to open /dev/fuse: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
