// Stand-in for runc's standard_init_linux.go: execve the container's entrypoint and report the
// error the way runc does.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	err := syscall.Exec(os.Args[1], os.Args[1:], os.Environ())
	fmt.Fprintf(os.Stderr, "standard_init_linux.go:195: exec user process caused %q\n", err.Error())
	os.Exit(1)
}
