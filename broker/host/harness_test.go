package host

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/test/poll"
)

// fakeClock is a wall clock the test moves.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock(t time.Time) *fakeClock {
	c := &fakeClock{}
	c.ns.Store(t.UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// eventually polls cond every 5ms until it holds, failing the test when
// d passes first.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Wait(t, d, 5*time.Millisecond, what, cond)
}

// newEngine builds a real engine over a memory store (durability none).
func newEngine(t *testing.T, cfg *config.Config) *engine.Server {
	t.Helper()
	cfg.Durability.Mode, cfg.DataDir = config.DurabilityNone, ""
	e, err := engine.New(cfg, memstore.New(), engine.WithLogger(testLogger(t)))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startEngine runs a real engine, for the tests of what the host's
// listeners hand it; the test's cleanup drains it.
func startEngine(t *testing.T, cfg *config.Config) *engine.Server {
	t.Helper()
	e := newEngine(t, cfg)
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Drain(ctx); err != nil {
			t.Errorf("drain: %v", err)
		}
	})
	return e
}

// mqttConnect sends an MQTT 5.0 CONNECT on nc and returns the answer.
func mqttConnect(t *testing.T, nc net.Conn, clientID string) packet.Packet {
	t.Helper()
	_ = nc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := packet.Write(nc, &packet.Connect{ProtocolVersion: packet.V5, ClientID: clientID, CleanStart: true}, packet.V5); err != nil {
		t.Fatal(err)
	}
	p, err := packet.NewReader(nc, packet.V5, 0).ReadPacket()
	if err != nil {
		t.Fatalf("reading the answer to CONNECT: %v", err)
	}
	return p
}
