// Package ports hands out loopback TCP ports for processes that a test
// starts later, and may stop and start again on the same port.
//
// A port taken with "127.0.0.1:0" comes from the kernel's ephemeral range
// (ip_local_port_range), the same range the local ends of outgoing
// connections come from: between the moment a test frees it and the
// moment its process binds it (and while that process is stopped in a
// restart test), any outgoing connection of a busy test (fault proxies,
// clients, members dialing each other) can take it, and the process fails
// with "address already in use". Ports handed out here are below the
// ephemeral range, where no outgoing connection gets a local port, and
// were free when handed out.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port handed out: above the well-known and most
// registered service ports.
const lowest = 10000

var (
	mu     sync.Mutex
	issued = map[int]bool{} // handed out by this process: never twice
)

// Free returns n distinct "127.0.0.1:port" addresses that were free a
// moment ago. Below the ephemeral range when there is room for it (at
// least 1,000 ports), otherwise from the kernel like "127.0.0.1:0".
func Free(n int) ([]string, error) {
	hi := ephemeralLow()
	if hi-lowest < 1000 {
		return fromKernel(n)
	}
	return freeIn(n, lowest, hi)
}

// freeIn is Free from the ports in [lo, hi).
func freeIn(n, lo, hi int) ([]string, error) {
	mu.Lock()
	defer mu.Unlock()
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	out := make([]string, 0, n)
	for tries := 0; len(out) < n; tries++ {
		if tries > 50*n+10*(hi-lo) {
			return nil, errors.New("ports: no free port below the ephemeral range")
		}
		p := lo + rand.IntN(hi-lo)
		if issued[p] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue // in use
		}
		lns = append(lns, ln)
		issued[p] = true
		out = append(out, ln.Addr().String())
	}
	return out, nil
}

// ephemeralLow is the start of the kernel's ephemeral port range (32768,
// Linux's default, when it cannot be read).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 32768
	}
	lo, err := strconv.Atoi(f[0])
	if err != nil || lo <= 0 || lo > 65535 {
		return 32768
	}
	return lo
}

func fromKernel(n int) ([]string, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}()
	out := make([]string, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("ports: %w", err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return out, nil
}
