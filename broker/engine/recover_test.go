package engine

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
)

// injectPanic makes the connection of clientID panic once at site.
func injectPanic(t *testing.T, site, clientID string) *atomic.Bool {
	t.Helper()
	var fired atomic.Bool
	h := func(s, id string) {
		if s == site && id == clientID && fired.CompareAndSwap(false, true) {
			panic("injected test panic at " + site)
		}
	}
	connPanicHook.Store(&h)
	t.Cleanup(func() { connPanicHook.Store(nil) })
	return &fired
}

// roundTripQoS1 publishes one QoS 1 message on c to a topic c subscribes
// to and waits for both its PUBACK and its delivery.
func roundTripQoS1(t *testing.T, c *rawClient, pid uint16, topic string) {
	t.Helper()
	c.send(&packet.Publish{QoS: 1, PacketID: pid, Topic: topic, Payload: []byte("m")})
	gotAck, gotMsg := false, false
	for !gotAck || !gotMsg {
		switch p := c.recv().(type) {
		case *packet.Puback:
			gotAck = gotAck || p.PacketID == pid
		case *packet.Publish:
			gotMsg = true
			c.send(&packet.Puback{PacketID: p.PacketID})
		}
	}
}

func TestPanicInConnectionClosesOnlyIt(t *testing.T) {
	for _, site := range []string{"dispatch", "writer"} {
		t.Run(site, func(t *testing.T) {
			b := startBroker(t, nil)
			honest := dialRaw(t, b.addr, packet.V5)
			honest.connect(&packet.Connect{ClientID: "honest", CleanStart: true})
			honest.subscribe(1, 0, packet.Subscription{Filter: "h", QoS: 1})
			roundTripQoS1(t, honest, 1, "h")

			fired := injectPanic(t, site, "bad")
			bad := dialRaw(t, b.addr, packet.V5)
			bad.send(&packet.Connect{ProtocolVersion: packet.V5, ClientID: "bad", CleanStart: true,
				Properties: packet.Properties{SessionExpiryInterval: u32(600)}})
			if site == "dispatch" {
				if _, ok := bad.recv().(*packet.Connack); !ok {
					t.Fatal("expected CONNACK")
				}
				bad.send(&packet.Pingreq{})
			}
			bad.expectClosed()
			if !fired.Load() {
				t.Fatal("the injected panic did not fire")
			}
			eventually(t, 5*time.Second, "panic counted", func() bool { return b.srv.Stats().ConnectionPanics == 1 })
			eventually(t, 5*time.Second, "bad detached", func() bool { return !b.srv.online("bad") })

			// Everyone else keeps working, and the client can come back to
			// its session.
			for i := uint16(2); i < 5; i++ {
				roundTripQoS1(t, honest, i, "h")
			}
			again := dialRaw(t, b.addr, packet.V5)
			ack := again.connect(&packet.Connect{ClientID: "bad", Properties: packet.Properties{SessionExpiryInterval: u32(600)}})
			if ack.ReasonCode != packet.Success || !ack.SessionPresent {
				t.Fatalf("reconnect after the panic: %+v", ack)
			}
			again.send(&packet.Pingreq{})
			if _, ok := again.recv().(*packet.Pingresp); !ok {
				t.Fatal("expected PINGRESP")
			}
		})
	}
}

// A panic that leaves a shared lock held is not recovered: the probe
// finds the lock taken.
func TestSharedStateProbe(t *testing.T) {
	b := startBroker(t, nil)
	c := &conn{srv: b.srv}
	if !b.srv.sharedStateFree(c) {
		t.Fatal("probe failed with every lock free")
	}
	b.srv.seqMu.Lock()
	start := time.Now()
	free := b.srv.sharedStateFree(c)
	b.srv.seqMu.Unlock()
	if free {
		t.Fatal("probe passed with seqMu held")
	}
	if d := time.Since(start); d < lockProbeWait || d > lockProbeWait+time.Second {
		t.Errorf("probe took %v, want about %v", d, lockProbeWait)
	}
}
