/* Stand-in for tmux 3.2a on an older glibc: forkpty() -> grantpt() chowned the new slave to
 * (uid, tty group 5), as glibc < 2.33 did, and tmux reported the failure as a fork failure. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int main(void) {
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || chown(ptsname(master), getuid(), 5) < 0) {
        fprintf(stderr, "create window failed: fork failed: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}
