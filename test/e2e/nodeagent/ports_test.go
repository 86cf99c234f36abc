package nodeagent

import (
	"net/netip"
	"testing"
)

func TestIPAllocator(t *testing.T) {
	a := newIPAllocator()
	r := netip.MustParsePrefix(PodIPRange)
	seen := map[string]bool{}
	for i := range 600 {
		s, err := a.get()
		if err != nil {
			t.Fatal(err)
		}
		ip := netip.MustParseAddr(s)
		if !r.Contains(ip) || ip == r.Addr() || ip.IsLoopback() || seen[s] {
			t.Fatalf("address %d: %s (in %s, seen %v)", i, s, r, seen[s])
		}
		seen[s] = true
	}
	// The range ends: the last address is never handed out.
	a.next = netip.MustParseAddr("198.19.255.254")
	if s, err := a.get(); err != nil || s != "198.19.255.254" {
		t.Fatalf("last but one: %q %v", s, err)
	}
	if s, err := a.get(); err == nil {
		t.Fatalf("past the range: %q", s)
	}
}
