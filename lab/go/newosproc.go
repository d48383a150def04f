// Stand-in for a Go program that needs OS threads (the CNI plugin of kind#2830): goroutines
// locked to their threads force the runtime to start one OS thread each.
package main

import (
	"runtime"
	"time"
)

func main() {
	for i := 0; i < 64; i++ {
		go func() {
			runtime.LockOSThread()
			time.Sleep(3 * time.Second)
		}()
	}
	time.Sleep(4 * time.Second)
}
