package engine

import (
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

// gatedBroker starts a broker over a memstore behind a gate.
func gatedBroker(t *testing.T) (*gatedStore, *testBroker) {
	st := newGatedStore(memstore.New())
	b := startBroker(t, testConfig(), withStore(st))
	t.Cleanup(st.release) // a failing test must not leave the broker's stop waiting at the gate
	return st, b
}

// persistent is the CONNECT properties of a persistent 5.0 session.
var persistent = packet.Properties{SessionExpiryInterval: u32(3600)}

// onlinePersistent connects a persistent 5.0 session subscribed to filter.
func onlinePersistent(t *testing.T, b *testBroker, id, filter string, qos byte) *rawClient {
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: id, CleanStart: true, Properties: persistent})
	c.subscribe(1, 0, packet.Subscription{Filter: filter, QoS: qos})
	return c
}

// A QoS 1 message to an online persistent subscriber goes out while its
// publish waits for the store (early delivery); the publisher is
// acknowledged only once it is stored, and the subscriber's
// acknowledgement, read meanwhile, removes the entry after it. A QoS 2
// delivery waits for the store.
func TestEarlyDeliveryToPersistentSubscriber(t *testing.T) {
	st, b := gatedBroker(t)
	sub1 := onlinePersistent(t, b, "early1", "e/1", 1)
	sub2 := onlinePersistent(t, b, "early2", "e/2", 2)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "early-pub", CleanStart: true})

	st.hold()
	pub.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "e/1", Payload: []byte("one")})
	p := sub1.recvPublish()
	if string(p.Payload) != "one" || p.QoS != 1 || p.Dup {
		t.Fatalf("early delivery: %+v", p)
	}
	pub.expectNothing(100 * time.Millisecond) // not acknowledged before it is stored
	sub1.send(&packet.Puback{PacketID: p.PacketID})
	st.release()
	if a, ok := pub.recv().(*packet.Puback); !ok || a.PacketID != 1 || a.ReasonCode != packet.Success {
		t.Fatalf("publisher's acknowledgement: %+v", a)
	}
	eventually(t, 5*time.Second, "the acknowledged entry removed from the store", func() bool {
		return st.Store.Stats().Messages == 0
	})

	st.hold()
	pub.send(&packet.Publish{QoS: 2, PacketID: 2, Topic: "e/2", Payload: []byte("two")})
	sub2.expectNothing(100 * time.Millisecond) // QoS 2: its Sent mark must be durable first
	st.release()
	if r, ok := pub.recv().(*packet.Pubrec); !ok || r.PacketID != 2 {
		t.Fatalf("publisher's PUBREC: %+v", r)
	}
	if p := sub2.recvPublish(); string(p.Payload) != "two" || p.QoS != 2 {
		t.Fatalf("QoS 2 delivery: %+v", p)
	}

	// The first subscriber's entry is not sent again after a reconnect:
	// its acknowledgement was not lost behind the held commit.
	sub1.send(&packet.Disconnect{})
	sub1.expectClosed()
	waitOffline(t, b, "early1")
	again := dialRaw(t, b.addr, packet.V5)
	if ack := again.connect(&packet.Connect{ClientID: "early1", Properties: persistent}); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	again.expectNothing(200 * time.Millisecond)
}

// An early delivery whose publish then fails to commit: the publisher
// gets an error (5.0), the subscriber keeps what it received (QoS 1: at
// least once), its acknowledgement is accepted, and nothing of the
// message is left in the queue or sent again.
func TestEarlyDeliveryOfAFailedCommit(t *testing.T) {
	st, b := gatedBroker(t)
	sub := onlinePersistent(t, b, "early-f", "f", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "early-fpub", CleanStart: true})

	st.hold()
	st.failOne.Store(true)
	pub.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "f", Payload: []byte("x")})
	p := sub.recvPublish()
	st.release()
	if a, ok := pub.recv().(*packet.Puback); !ok || a.ReasonCode != packet.UnspecifiedError {
		t.Fatalf("publisher's acknowledgement of a failed commit: %+v", a)
	}
	sub.send(&packet.Puback{PacketID: p.PacketID})
	eventually(t, 5*time.Second, "the queue empty", func() bool {
		i, ok := b.srv.Session("early-f")
		return ok && i.QueuedMessages == 0 && i.Inflight == 0
	})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()
	waitOffline(t, b, "early-f")
	again := dialRaw(t, b.addr, packet.V5)
	again.connect(&packet.Connect{ClientID: "early-f", Properties: persistent})
	again.expectNothing(200 * time.Millisecond)
	if n := st.Store.Stats().Messages; n != 0 {
		t.Fatalf("store holds %d messages", n)
	}
}

// With durability.earlyDelivery off, a QoS 1 message reaches an online
// persistent subscriber only once its publish is stored; the switch is
// applied without a restart.
func TestEarlyDeliverySwitch(t *testing.T) {
	st := newGatedStore(memstore.New())
	cfg := testConfig()
	off := false
	cfg.Durability.EarlyDelivery = &off
	b := startBroker(t, cfg, withStore(st))
	t.Cleanup(st.release)
	sub := onlinePersistent(t, b, "late1", "l/1", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "late-pub", CleanStart: true})

	st.hold()
	pub.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "l/1", Payload: []byte("stored first")})
	sub.expectNothing(150 * time.Millisecond) // the store holds the publish
	st.release()
	if p := sub.recvPublish(); string(p.Payload) != "stored first" {
		t.Fatalf("delivery after the commit: %+v", p)
	}
	if a, ok := pub.recv().(*packet.Puback); !ok || a.PacketID != 1 {
		t.Fatalf("publisher's acknowledgement: %+v", a)
	}

	next := cfg.Clone()
	next.Durability.EarlyDelivery = nil // the default: on
	if changes, err := b.srv.ApplyConfig(next); err != nil || len(changes) != 0 {
		t.Fatalf("applying earlyDelivery hot: changes %+v, %v", changes, err)
	}
	st.hold()
	pub.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "l/1", Payload: []byte("early")})
	if p := sub.recvPublish(); string(p.Payload) != "early" {
		t.Fatalf("early delivery once switched on: %+v", p)
	}
	st.release()
	if a, ok := pub.recv().(*packet.Puback); !ok || a.PacketID != 2 {
		t.Fatalf("publisher's acknowledgement: %+v", a)
	}
}
