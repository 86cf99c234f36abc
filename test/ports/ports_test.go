package ports

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

func TestFreeBelowTheEphemeralRange(t *testing.T) {
	hi := ephemeralLow()
	if hi-lowest < 1000 {
		t.Skipf("ephemeral range starts at %d: no room below it", hi)
	}
	seen := map[string]bool{}
	for range 20 {
		addrs, err := Free(5)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			host, port, err := net.SplitHostPort(a)
			if err != nil {
				t.Fatal(err)
			}
			p, _ := strconv.Atoi(port)
			if host != "127.0.0.1" || p < lowest || p >= hi {
				t.Fatalf("%s: not a loopback port in [%d, %d)", a, lowest, hi)
			}
			if seen[a] {
				t.Fatalf("%s handed out twice", a)
			}
			seen[a] = true
			// It is free: a process can bind it.
			ln, err := net.Listen("tcp", a)
			if err != nil {
				t.Fatalf("%s: %v", a, err)
			}
			_ = ln.Close()
		}
	}
}

func TestFreeSkipsPortsInUse(t *testing.T) {
	// A range of 40 ports of which every other one is held by a listener
	// here: only the others are handed out, and never twice.
	hi := ephemeralLow()
	if hi-lowest < 1000 {
		t.Skip("no room below the ephemeral range")
	}
	lo := lowest + rand.IntN(hi-lowest-40) // a range no other test used
	mu.Lock()
	for p := lo; p < lo+40; p++ {
		delete(issued, p)
	}
	mu.Unlock()
	held := map[string]bool{}
	for p := lo; p < lo+40; p += 2 {
		a := "127.0.0.1:" + strconv.Itoa(p)
		ln, err := net.Listen("tcp", a)
		if err != nil {
			continue // in use already: held all the same
		}
		defer ln.Close()
		held[a] = true
	}
	got, err := freeIn(15, lo, lo+40)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, a := range got {
		if held[a] || seen[a] {
			t.Fatalf("%s handed out while held, or twice (%v)", a, got)
		}
		seen[a] = true
	}
	if _, err := freeIn(10, lo, lo+40); err == nil {
		t.Fatal("more ports handed out than the range had free")
	}
}
