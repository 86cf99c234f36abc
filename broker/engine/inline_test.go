package engine

import (
	"encoding/binary"
	"net"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
)

// A publisher with one message in flight has its deliveries written by its
// own read loop (flushInline). When the subscriber stops reading, those
// writes find the socket full: what the socket did not take must go out
// through the writer goroutine, in order, before anything else, so the
// subscriber still reads whole packets in publish order.
func TestInlineWritesKeepTheStreamWhole(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxInflight = 1000
	cfg.Limits.OutboundBufferBytes = 64 << 20
	tb := startBroker(t, cfg)
	sub := dialRaw(t, tb.addr, packet.V5)
	if err := sub.nc.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	sub.connect(&packet.Connect{ClientID: "slow", CleanStart: true,
		Properties: packet.Properties{ReceiveMaximum: u16(1000)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "big", QoS: 1})
	pub := dialRaw(t, tb.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "fast", CleanStart: true})

	// 200 x 64 KiB: far more than the sockets buffer while the subscriber
	// does not read. One at a time: each publish arrives alone.
	const n, size = 200, 64 << 10
	for i := range n {
		payload := make([]byte, size)
		binary.BigEndian.PutUint32(payload, uint32(i))
		payload[size-1] = byte(i)
		pub.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "big", Payload: payload})
		if ack, ok := pub.recv().(*packet.Puback); !ok || ack.PacketID != uint16(i+1) {
			t.Fatalf("publish %d: want its PUBACK, got %+v", i, ack)
		}
	}
	for i := range n {
		p := sub.recvPublish()
		if len(p.Payload) != size || binary.BigEndian.Uint32(p.Payload) != uint32(i) || p.Payload[size-1] != byte(i) {
			t.Fatalf("delivery %d: payload of %d bytes starting %x", i, len(p.Payload), p.Payload[:min(8, len(p.Payload))])
		}
		if p.Dup {
			t.Fatalf("delivery %d has DUP set", i)
		}
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
}

// A persistent QoS 2 subscriber with a Receive Maximum of 1 gets each next
// delivery when its read loop handles the PUBCOMP of the previous one; the
// read loop's own flush must not write that PUBLISH before its packet
// identifier is durable, so it leaves it to the writer goroutine (staged),
// which commits first. Every message arrives once, in order, without DUP.
func TestInlineFlushLeavesQoS2ToTheWriter(t *testing.T) {
	tb := startBroker(t, testConfig())
	sub := dialRaw(t, tb.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "q2sub", CleanStart: true,
		Properties: packet.Properties{SessionExpiryInterval: u32(600), ReceiveMaximum: u16(1)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "q2", QoS: 2})
	pub := dialRaw(t, tb.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "q2pub", CleanStart: true})

	const n = 30
	for i := range n {
		pub.send(&packet.Publish{QoS: 2, PacketID: uint16(i + 1), Topic: "q2", Payload: []byte{byte(i)}})
	}
	done := make(chan error, 1)
	go func() { done <- completeQoS2(pub, n) }()
	for i := range n {
		p := sub.recvPublish()
		if len(p.Payload) != 1 || p.Payload[0] != byte(i) || p.Dup || p.QoS != 2 {
			t.Fatalf("delivery %d: %+v", i, p)
		}
		sub.send(&packet.Pubrec{PacketID: p.PacketID})
		if rel, ok := sub.recv().(*packet.Pubrel); !ok || rel.PacketID != p.PacketID {
			t.Fatalf("delivery %d: want PUBREL %d, got %+v", i, p.PacketID, rel)
		}
		sub.send(&packet.Pubcomp{PacketID: p.PacketID})
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	sub.expectNothing(100 * time.Millisecond)
}

// completeQoS2 answers the PUBRECs of n QoS 2 publishes and reads their
// PUBCOMPs.
func completeQoS2(c *rawClient, n int) error {
	for done := 0; done < n; {
		p, err := c.tryRecv(5 * time.Second)
		if err != nil {
			return err
		}
		switch p := p.(type) {
		case *packet.Pubrec:
			if err := packet.Write(c.nc, &packet.Pubrel{PacketID: p.PacketID}, c.version); err != nil {
				return err
			}
		case *packet.Pubcomp:
			done++
		}
	}
	return nil
}

func newBareConn() *conn {
	return &conn{srv: &Server{}, wake: make(chan struct{}, 1), closing: make(chan struct{})}
}

func woken(c *conn) bool {
	select {
	case <-c.wake:
		return true
	default:
		return false
	}
}

// A wakeList takes a connection once, hands it back by waking it when it
// cannot write inline, and refuses additions once flushed, so that a late
// notify wakes the writer itself rather than wait for a flush that has
// passed.
func TestWakeList(t *testing.T) {
	a, b := newBareConn(), newBareConn()
	var wl, other wakeList
	wl.open()
	other.open()
	for _, c := range []*conn{a, a, b} { // a twice: listed once
		if !wl.add(c) {
			t.Fatal("an open list refused a connection")
		}
	}
	if !other.add(a) {
		t.Fatal("a connection listed elsewhere must count as listed")
	}
	if len(wl.conns) != 2 || len(other.conns) != 0 {
		t.Fatalf("listed %d and %d connections, want 2 and 0", len(wl.conns), len(other.conns))
	}
	wl.flush()
	if !woken(a) || !woken(b) {
		t.Fatal("flush did not hand several connections to their writers")
	}
	if a.listed.Load() || b.listed.Load() {
		t.Fatal("flush left a connection marked as listed")
	}
	if wl.add(a) {
		t.Fatal("a flushed list took a connection")
	}
	wl.open()
	for range maxListedWakes {
		wl.add(newBareConn())
	}
	if wl.add(newBareConn()) {
		t.Fatalf("a list took more than %d connections", maxListedWakes)
	}
}

// While the read loop defers its connection's wake-ups, notify wakes no
// writer and leaves the flush to the read loop; otherwise it wakes the
// writer at once.
func TestNotifyDefers(t *testing.T) {
	c := newBareConn()
	c.notify()
	if !woken(c) {
		t.Fatal("notify without deferral did not wake the writer")
	}
	c.wakeState.Store(deferring)
	c.notify()
	c.notify()
	if woken(c) {
		t.Fatal("notify woke the writer while the read loop defers")
	}
	if c.wakeState.Load() != deferring|wakeWanted {
		t.Fatalf("wake state %b, want deferring and wanted", c.wakeState.Load())
	}
	c.endDefer() // no socket: the flush falls back to the writer
	if !woken(c) || c.wakeState.Load() != noDeferring {
		t.Fatal("endDefer did not hand the deferred flush over")
	}
}

// A publish that came alone and stores nothing is acknowledged before it
// is delivered (route): a device that publishes one message at a time
// waits for its PUBACK, not for the broker's writes to the subscribers.
// On a connection subscribed to its own topic both go to the same socket,
// so the order is on the wire: the PUBACK, then the delivery.
func TestAloneAcknowledgedBeforeDelivered(t *testing.T) {
	tb := startBroker(t, testConfig())
	c := dialRaw(t, tb.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "echo", CleanStart: true})
	// QoS 0 deliveries: the client sends nothing back, so each PUBLISH
	// arrives alone.
	c.subscribe(1, 0, packet.Subscription{Filter: "echo", QoS: 0})
	for i := range 20 {
		id := uint16(i + 1)
		c.send(&packet.Publish{QoS: 1, PacketID: id, Topic: "echo", Payload: []byte{byte(i)}})
		switch p := c.recv().(type) {
		case *packet.Puback:
			if p.PacketID != id {
				t.Fatalf("publish %d: PUBACK for %d", i, p.PacketID)
			}
		default:
			t.Fatalf("publish %d: got %s before its PUBACK", i, p.Type())
		}
		if p := c.recvPublish(); len(p.Payload) != 1 || p.Payload[0] != byte(i) {
			t.Fatalf("delivery %d: %+v", i, p)
		}
	}
}
