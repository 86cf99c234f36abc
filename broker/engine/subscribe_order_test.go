package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// A SUBSCRIBE routes messages from the moment the broker read it: a
// publish that reaches the broker after that is delivered to the new
// subscription, although the SUBACK still waits for the subscription to
// be durable.
func TestSubscribeRoutesBeforeSuback(t *testing.T) {
	for name, open := range map[string]func(t *testing.T) store.Store{
		"memory": func(*testing.T) store.Store { return memstore.New() },
		"pebble-sync": func(t *testing.T) store.Store {
			st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Durability: pebblestore.Sync})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = st.Close() })
			return st
		},
	} {
		t.Run(name, func(t *testing.T) {
			g := newGatedStore(open(t))
			b := startBroker(t, nil, withStore(g))
			sub := dialRaw(t, b.addr, packet.V5)
			sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true,
				Properties: packet.Properties{SessionExpiryInterval: u32(600)}})
			pub := dialRaw(t, b.addr, packet.V5)
			pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})

			// Hold the store: the SUBSCRIBE is read, its commit waits.
			g.hold()
			subs := b.srv.router.Subscriptions()
			sub.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t/#", QoS: 1}}})
			eventually(t, 5*time.Second, "the subscription's commit", func() bool { return g.waiting.Load() == 1 })
			if n := b.srv.router.Subscriptions(); n != subs+1 {
				t.Fatalf("subscription not routed while its commit waits: %d subscriptions", n)
			}
			// A publish read after the SUBSCRIBE, before its SUBACK.
			pub.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "t/x", Payload: []byte("early")})
			// Its batch is routed and queued behind the held commit.
			eventually(t, 5*time.Second, "the publish routed", func() bool { return len(b.srv.com.ch) == 1 })
			g.release()

			var gotAck, gotMsg bool
			for !gotAck || !gotMsg {
				switch p := sub.recv().(type) {
				case *packet.Suback:
					if p.ReasonCodes[0] != packet.GrantedQoS1 {
						t.Fatalf("SUBACK %v", p.ReasonCodes)
					}
					gotAck = true
				case *packet.Publish:
					if string(p.Payload) != "early" {
						t.Fatalf("got %q", p.Payload)
					}
					gotMsg = true
					sub.send(&packet.Puback{PacketID: p.PacketID})
				}
			}
			if ack, ok := pub.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.Success {
				t.Fatalf("PUBACK %+v", ack)
			}
		})
	}
}

// When the subscription cannot be stored, it is removed again (the router
// stops routing to it, the session forgets it) and the client learns it
// from the SUBACK (0x80); the connection stays up.
func TestSubscribeCommitFailureUndoes(t *testing.T) {
	for _, version := range []byte{packet.V5, packet.V311} {
		t.Run(fmt.Sprint("v", version), func(t *testing.T) {
			g := newGatedStore(memstore.New())
			b := startBroker(t, nil, withStore(g))
			c := dialRaw(t, b.addr, version)
			c.connect(&packet.Connect{ClientID: "sub", CleanStart: false,
				Properties: packet.Properties{SessionExpiryInterval: u32(600)}})
			c.subscribe(1, 0, packet.Subscription{Filter: "kept", QoS: 1})
			subs := b.srv.router.Subscriptions()

			g.failOne.Store(true)
			ack := c.subscribe(2, 0, packet.Subscription{Filter: "lost/#", QoS: 1}, packet.Subscription{Filter: "kept", QoS: 0})
			want := packet.UnspecifiedError
			if version < packet.V5 {
				want = packet.SubackFailure
			}
			for i, rc := range ack.ReasonCodes {
				if rc != want {
					t.Errorf("SUBACK code %d = %v, want %v", i, rc, want)
				}
			}
			if n := b.srv.router.Subscriptions(); n != subs {
				t.Errorf("router holds %d subscriptions after the failure, want %d", n, subs)
			}
			info, _ := b.srv.Session("sub")
			if info.Subscriptions != 1 {
				t.Errorf("session holds %d subscriptions, want 1", info.Subscriptions)
			}
			// The replaced subscription keeps its stored options (QoS 1),
			// in the session and in the router.
			b.srv.mu.Lock()
			kept := b.srv.sessions["sub"].sess.Subscriptions()
			b.srv.mu.Unlock()
			if len(kept) != 1 || kept[0].Filter != "kept" || kept[0].QoS != 1 {
				t.Errorf("session subscriptions after the failure: %+v", kept)
			}
			pub := dialRaw(t, b.addr, packet.V5)
			pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
			pub.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "kept", Payload: []byte("k")})
			if m := c.recvPublish(); m.QoS != 1 || m.Topic != "kept" {
				t.Errorf("delivery on the kept subscription: QoS %d topic %q", m.QoS, m.Topic)
			} else {
				c.send(&packet.Puback{PacketID: m.PacketID})
			}
			// Still connected: a retry works.
			if ack := c.subscribe(3, 0, packet.Subscription{Filter: "lost/#", QoS: 1}); ack.ReasonCodes[0] != packet.GrantedQoS1 {
				t.Errorf("retry: %v", ack.ReasonCodes)
			}
		})
	}
}
