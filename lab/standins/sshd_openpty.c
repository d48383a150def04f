/* Stand-in for sshd's pty_allocate(): openpty(), and the same error line on failure. */
#include <errno.h>
#include <pty.h>
#include <stdio.h>
#include <string.h>

int main(void) {
    int master, slave;
    char name[64];
    if (openpty(&master, &slave, name, NULL, NULL) < 0) {
        fprintf(stderr, "error: openpty: %.100s\n", strerror(errno));
        fprintf(stderr, "error: session_pty_req: session 0 alloc failed\n");
        return 1;
    }
    return 0;
}
