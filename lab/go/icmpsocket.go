// Stand-in for Trugamr/wol's unprivileged pinger: an ICMP datagram socket, which the kernel
// allows only to groups in net.ipv4.ping_group_range.
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	_, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, syscall.IPPROTO_ICMP)
	if err != nil {
		fmt.Fprintf(os.Stderr, "Error getting status for machine lab: error pinging: socket: %v\n", err)
		os.Exit(1)
	}
}
