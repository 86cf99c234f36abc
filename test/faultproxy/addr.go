package faultproxy

import (
	"fmt"
	"net"
	"strconv"
)

// checkLoopback accepts host:port where host is a loopback IP literal and
// port a number (0 only when zero is true: a listen address).
func checkLoopback(addr string, zero bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("faultproxy: address %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("faultproxy: address %q: only loopback IP literals (127.0.0.1) are allowed", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || (n == 0 && !zero) {
		return fmt.Errorf("faultproxy: address %q: bad port", addr)
	}
	return nil
}
