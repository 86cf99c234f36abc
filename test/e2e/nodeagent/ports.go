package nodeagent

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"sync"
)

// portAllocator hands out local ports that are free now, and keeps each
// pod's ports for the life of the agent (keyed by namespace/name/port), so
// a StatefulSet pod re-created under the same name listens where its
// clients already connect, as a Service address would stay stable.
type portAllocator struct {
	base, limit int

	mu    sync.Mutex
	byKey map[string]int
	used  map[int]bool
}

func newPortAllocator(base, limit int) *portAllocator {
	return &portAllocator{base: base, limit: limit, byKey: map[string]int{}, used: map[int]bool{}}
}

// get returns the port for key, allocating a free one the first time.
func (p *portAllocator) get(key string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if port, ok := p.byKey[key]; ok {
		return port, nil
	}
	span := p.limit - p.base
	start := rand.IntN(span)
	for i := range span {
		port := p.base + (start+i)%span
		if p.used[port] || !free(port) {
			continue
		}
		p.used[port] = true
		p.byKey[key] = port
		return port, nil
	}
	return 0, fmt.Errorf("nodeagent: no free port in %d-%d", p.base, p.limit)
}

// lookup returns the port allocated for key, without allocating one.
func (p *portAllocator) lookup(key string) (int, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	port, ok := p.byKey[key]
	return port, ok
}

func free(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	return ln.Close() == nil
}

// PodIPRange is where the pods' IPs come from: RFC 2544's benchmarking
// range, which no network routes. A pod's process listens on 127.0.0.1
// (its status.podIP environment variables say so too), but the API shows
// a stand-in: kube-apiserver refuses loopback addresses in EndpointSlices,
// so pods at 127.0.0.1 would never be any Service's endpoints. Nothing
// dials these addresses: the agent's Service proxy finds each endpoint's
// pod by its targetRef, and tests reach pods through the PortsAnnotation.
const PodIPRange = "198.18.0.0/15"

// ipAllocator hands out pod IPs from PodIPRange, a new one for every pod
// (by UID), as a network plugin would.
type ipAllocator struct {
	mu    sync.Mutex
	next  netip.Addr
	limit netip.Prefix
}

func newIPAllocator() *ipAllocator {
	p := netip.MustParsePrefix(PodIPRange)
	return &ipAllocator{next: p.Addr().Next(), limit: p}
}

// get returns the next address, skipping the range's first and last.
func (a *ipAllocator) get() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ip := a.next
	if !a.limit.Contains(ip.Next()) {
		return "", fmt.Errorf("nodeagent: pod IPs of %s exhausted", PodIPRange)
	}
	a.next = ip.Next()
	return ip.String(), nil
}
