package engine

import (
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
)

// Connections that never send CONNECT are not counted by
// limits.maxConnections, but they must not be unbounded either: past
// openConnLimit the server closes new ones at once, and admits again once
// the idle ones are gone.
func TestOpenConnectionsAreBounded(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxConnections = 2
	b := startBroker(t, cfg)
	limit := openConnLimit(cfg.Limits.MaxConnections)
	idle := make([]*rawClient, limit)
	for i := range idle {
		idle[i] = dialRaw(t, b.addr, packet.V5)
	}
	eventually(t, 5*time.Second, "idle connections registered", func() bool {
		b.srv.mu.Lock()
		defer b.srv.mu.Unlock()
		return len(b.srv.conns) == limit
	})
	extra := dialRaw(t, b.addr, packet.V5)
	extra.expectClosed()
	if n := b.srv.Stats().Refusals[LimitConnections]; n != 1 {
		t.Errorf("refusals of %s: %d, want 1", LimitConnections, n)
	}

	for _, c := range idle {
		_ = c.nc.Close()
	}
	eventually(t, 5*time.Second, "idle connections gone", func() bool {
		b.srv.mu.Lock()
		defer b.srv.mu.Unlock()
		return len(b.srv.conns) == 0
	})
	c := dialRaw(t, b.addr, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: "after", CleanStart: true}); ack.ReasonCode != packet.Success {
		t.Fatalf("CONNECT after the idle connections left: %v", ack.ReasonCode)
	}
}

func TestOpenConnLimit(t *testing.T) {
	for maxConns, want := range map[int]int{0: 0, -1: 0, 1: 17, 100: 141, 10000: 12516} {
		if got := openConnLimit(maxConns); got != want {
			t.Errorf("openConnLimit(%d) = %d, want %d", maxConns, got, want)
		}
	}
}
