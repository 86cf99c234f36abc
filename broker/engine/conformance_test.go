package engine

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

// A session that is not persistent (3.1.1 cleanSession=1, 5.0 expiry 0)
// ends with its network connection, also when a takeover closes it: the
// new connection must not resume it [MQTT-3.1.2-6] (5.0 section
// 3.1.2.11.2). Resuming it into a persistent session also lost its
// in-memory queue, which was never stored.
func TestTakeoverEndsNonPersistentSession(t *testing.T) {
	b := startBroker(t, nil)
	for _, v := range bothVersions {
		id := "np-" + vname(v)
		old := dialRaw(t, b.addr, v)
		old.connect(&packet.Connect{ClientID: id, CleanStart: true})
		old.subscribe(1, 0, packet.Subscription{Filter: "np/" + vname(v), QoS: 1})
		cp := &packet.Connect{ClientID: id}
		if v == packet.V5 {
			cp.Properties.SessionExpiryInterval = u32(600)
		}
		nw := dialRaw(t, b.addr, v)
		if ack := nw.connect(cp); ack.ReasonCode != packet.Success || ack.SessionPresent {
			t.Fatalf("%s: CONNACK %+v, want a new session", vname(v), ack)
		}
		old.expectClosed()
		if i, ok := b.srv.Session(id); !ok || i.Subscriptions != 0 || !i.Persistent {
			t.Fatalf("%s: session after takeover %+v", vname(v), i)
		}
	}
}

// A 5.0 DISCONNECT with any Reason Code but 0x00 keeps the will: only
// Normal disconnection deletes it [MQTT-3.14.4-3] (section 3.1.2.5).
func TestWillAfterDisconnectWithErrorCode(t *testing.T) {
	b := startBroker(t, nil)
	watch := dialRaw(t, b.addr, packet.V5)
	watch.connect(&packet.Connect{ClientID: "watch", CleanStart: true})
	watch.subscribe(1, 0, packet.Subscription{Filter: "will/#"})
	for _, rc := range []packet.ReasonCode{packet.UnspecifiedError, packet.ImplementationSpecificError, packet.NormalDisconnection} {
		id := fmt.Sprintf("dying-%02x", byte(rc))
		c := dialRaw(t, b.addr, packet.V5)
		c.connect(&packet.Connect{ClientID: id, CleanStart: true, WillFlag: true,
			WillTopic: "will/" + id, WillPayload: []byte("bye")})
		c.send(&packet.Disconnect{ReasonCode: rc})
		c.expectClosed()
		if rc == packet.NormalDisconnection {
			watch.expectNothing(200 * time.Millisecond)
			continue
		}
		if p := watch.recvPublish(); p.Topic != "will/"+id {
			t.Fatalf("DISCONNECT 0x%02X: got %+v", byte(rc), p)
		}
	}
}

// An inflight message whose expiry passed while the client was away is
// resent (its delivery had started [MQTT-3.3.2-5]) with a remaining
// interval of 0, not a negative one wrapped to 4 billion seconds.
func TestResentExpiredMessageInterval(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, nil, withClock(clock))
	persist := packet.Properties{SessionExpiryInterval: u32(600)}
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "exp", CleanStart: true, Properties: persist})
	sub.subscribe(1, 0, packet.Subscription{Filter: "e", QoS: 1})
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "exp-pub", CleanStart: true})
	pub.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "e", Payload: []byte("x"),
		Properties: packet.Properties{MessageExpiryInterval: u32(10)}})
	if p := sub.recvPublish(); p.Properties.MessageExpiryInterval == nil || *p.Properties.MessageExpiryInterval != 10 {
		t.Fatalf("first delivery %+v", p.Properties.MessageExpiryInterval)
	}
	// The delivery may go out before the publish commits (early
	// delivery); the publisher's PUBACK comes after the commit, so from
	// here the entry is stored and its Sent mark is written when the
	// connection ends. (A connection that ends before the commit leaves
	// the entry Queued: it is delivered again as a first delivery, without
	// DUP, also once expired; docs/durability.md.)
	if ack, ok := pub.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("publisher: %+v, want PUBACK", ack)
	}
	_ = sub.nc.Close() // no PUBACK
	waitOffline(t, b, "exp")
	clock.Advance(time.Minute)
	again := dialRaw(t, b.addr, packet.V5)
	if ack := again.connect(&packet.Connect{ClientID: "exp", Properties: persist}); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	p := again.recvPublish()
	if !p.Dup || p.Properties.MessageExpiryInterval == nil || *p.Properties.MessageExpiryInterval != 0 {
		t.Fatalf("resent PUBLISH dup=%v expiry=%v, want DUP and 0", p.Dup, *p.Properties.MessageExpiryInterval)
	}
}

// stalledSubscriber connects id, subscribes to "flood" and never reads;
// a publisher floods it until the server's writer is stuck in Write (the
// QoS 0 buffer overflows as slow_consumer drops).
func stalledSubscriber(t *testing.T, b *testBroker, id string) {
	t.Helper()
	c := dialRaw(t, b.addr, packet.V5)
	_ = c.nc.(*net.TCPConn).SetReadBuffer(4096)
	c.connect(&packet.Connect{ClientID: id, CleanStart: true})
	c.subscribe(1, 0, packet.Subscription{Filter: "flood"})
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: id + "-pub", CleanStart: true})
	payload := make([]byte, 60<<10)
	for i := 0; b.srv.Stats().Drops[DropSlowConsumer] == 0; i++ {
		if i > 2000 {
			t.Fatal("the subscriber's buffers never filled")
		}
		pub.send(&packet.Publish{Topic: "flood", Payload: payload})
		pub.send(&packet.Pingreq{})
		pub.recv()
	}
}

// A connection whose client stopped reading must not hold up a takeover
// for the 30 s write timeout: the new connection gets its CONNACK soon,
// not 0x89 Server busy after the takeover wait.
func TestTakeoverOfStalledReader(t *testing.T) {
	b := startBroker(t, nil)
	stalledSubscriber(t, b, "stuck")
	start := time.Now()
	nw := dialRaw(t, b.addr, packet.V5)
	if ack := nw.connect(&packet.Connect{ClientID: "stuck", CleanStart: true}); ack.ReasonCode != packet.Success {
		t.Fatalf("CONNACK %v after %v", ack.ReasonCode, time.Since(start))
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("takeover took %v", el)
	}
}

// Drain must not wait for the write timeout of a client that stopped
// reading.
func TestDrainWithStalledReader(t *testing.T) {
	b := startBroker(t, nil)
	stalledSubscriber(t, b, "stuck")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = b.ln.Close()
	if err := b.srv.Drain(ctx); err != nil {
		t.Fatalf("drain: %v", err)
	}
}

// Concurrent CONNECTs must not exceed limits.maxConnections.
func TestMaxConnectionsConcurrent(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxConnections = 3
	b := startBroker(t, cfg)
	var admitted atomic.Int32
	var wg sync.WaitGroup
	for i := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialRaw(t, b.addr, packet.V5)
			c.send(&packet.Connect{ProtocolVersion: packet.V5, ClientID: fmt.Sprintf("mc-%d", i), CleanStart: true})
			p, err := c.tryRecv(5 * time.Second)
			if ack, ok := p.(*packet.Connack); err == nil && ok && ack.ReasonCode == packet.Success {
				admitted.Add(1)
			}
		}()
	}
	wg.Wait()
	if n := admitted.Load(); n > 3 {
		t.Fatalf("%d connections admitted, limit 3", n)
	}
	// At most 3 admitted: every other CONNECT is refused and counted.
	eventually(t, 10*time.Second, "21 refusals of "+LimitConnections, func() bool {
		return b.srv.Stats().Refusals[LimitConnections] >= 21
	})
}

// At the connection limit, a client may still take over its own live
// connection (a device reconnecting over a half-open one).
func TestMaxConnectionsAllowsTakeover(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxConnections = 1
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "only", CleanStart: true})
	again := dialRaw(t, b.addr, packet.V5)
	if ack := again.connect(&packet.Connect{ClientID: "only", CleanStart: true}); ack.ReasonCode != packet.Success {
		t.Fatalf("takeover at the limit: %v", ack.ReasonCode)
	}
	c.expectClosed()
	eventually(t, 5*time.Second, "one connection", func() bool { return b.srv.Stats().Connections == 1 })
}

// Acknowledgements go out in the order the PUBLISHes arrived
// [MQTT-4.6.0-2]: the PUBREC for a resent QoS 2 PUBLISH (no new commit)
// must not overtake the PUBACK of an earlier PUBLISH still being stored.
func TestAcksInArrivalOrder(t *testing.T) {
	st := newGatedStore(memstore.New())
	b := startBroker(t, nil, withStore(st))
	t.Cleanup(st.release) // before the broker drains
	offlineSubscriber(t, b, "off", "o/#", 1)
	c := dialRaw(t, b.addr, packet.V311)
	c.connect(&packet.Connect{ClientID: "orderly", CleanStart: true})
	c.send(&packet.Publish{QoS: 2, PacketID: 2, Topic: "o/2", Payload: []byte("two")})
	if _, ok := c.recv().(*packet.Pubrec); !ok {
		t.Fatal("expected PUBREC")
	}
	st.hold()
	c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "o/1", Payload: []byte("one")})
	c.send(&packet.Publish{QoS: 2, PacketID: 2, Dup: true, Topic: "o/2", Payload: []byte("two")})
	c.expectNothing(200 * time.Millisecond)
	st.release()
	if ack, ok := c.recv().(*packet.Puback); !ok || ack.PacketID != 1 {
		t.Fatalf("expected PUBACK 1 first, got %+v", ack)
	}
	if rec, ok := c.recv().(*packet.Pubrec); !ok || rec.PacketID != 2 {
		t.Fatalf("expected PUBREC 2, got %+v", rec)
	}
}

// A topic alias must not push a PUBLISH over the client's Maximum Packet
// Size [MQTT-3.1.2-24]: a message that fits without the alias property
// goes out without one.
func TestTopicAliasRespectsMaximumPacketSize(t *testing.T) {
	b := startBroker(t, nil)
	// PUBLISH QoS 0 "alias/t" with a 1-byte property block and payload p:
	// 1 + 1 + (2+7) + 1 + len(p) bytes; 40 bytes with a 28-byte payload.
	const max = 40
	sub := dialRaw(t, b.addr, packet.V5)
	sub.r.MaxSize = max
	sub.connect(&packet.Connect{ClientID: "amps", CleanStart: true,
		Properties: packet.Properties{MaximumPacketSize: u32(max), TopicAliasMaximum: u16(4)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "alias/t"})
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "amps-pub", CleanStart: true})
	pub.send(&packet.Publish{Topic: "alias/t", Payload: make([]byte, 28)})
	pub.send(&packet.Publish{Topic: "alias/t", Payload: []byte("small")})
	for range 2 {
		if p := sub.recvPublish(); p.Topic == "" && p.Properties.TopicAlias == nil {
			t.Fatalf("PUBLISH without topic or alias: %+v", p)
		}
	}
}

// When the release of an inbound QoS 2 state cannot be stored, no PUBCOMP
// goes out and the state is kept: the client resends PUBREL after
// reconnecting and the exchange completes then. Otherwise the stored
// state would outlive the exchange and, after a restart, swallow the next
// message with the same packet identifier.
func TestPubrelCommitFailureKeepsState(t *testing.T) {
	st := newGatedStore(memstore.New())
	b := startBroker(t, nil, withStore(st))
	persist := packet.Properties{SessionExpiryInterval: u32(600)}
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "q2", CleanStart: true, Properties: persist})
	c.send(&packet.Publish{QoS: 2, PacketID: 7, Topic: "q2", Payload: []byte("x")})
	if _, ok := c.recv().(*packet.Pubrec); !ok {
		t.Fatal("expected PUBREC")
	}
	st.failOne.Store(true)
	c.send(&packet.Pubrel{PacketID: 7})
	for p, err := c.tryRecv(5 * time.Second); err == nil; p, err = c.tryRecv(5 * time.Second) {
		if _, ok := p.(*packet.Pubcomp); ok {
			t.Fatal("PUBCOMP sent although the release was not stored")
		}
	}
	waitOffline(t, b, "q2")
	again := dialRaw(t, b.addr, packet.V5)
	again.connect(&packet.Connect{ClientID: "q2", Properties: persist})
	again.send(&packet.Pubrel{PacketID: 7})
	if comp, ok := again.recv().(*packet.Pubcomp); !ok || comp.ReasonCode != packet.Success {
		t.Fatalf("expected PUBCOMP 0x00 for the resent PUBREL, got %+v", comp)
	}
}
