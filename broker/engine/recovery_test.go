package engine

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// storeKinds opens a store that survives a Server restart: one memstore
// shared by both servers, or a Pebble store reopened from its directory.
var storeKinds = map[string]func(t *testing.T) (open func() store.Store){
	"memstore": func(t *testing.T) func() store.Store {
		st := memstore.New()
		return func() store.Store { return st }
	},
	"pebble": func(t *testing.T) func() store.Store {
		dir := t.TempDir()
		return func() store.Store {
			st, err := pebblestore.Open(dir, pebblestore.Options{Durability: pebblestore.Sync})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
	},
}

// restart stops b, closes its store unless it is shared, and starts a new
// server on the store that open returns.
func restart(t *testing.T, b *testBroker, cfg *config.Config, open func() store.Store) *testBroker {
	t.Helper()
	b.stop()
	if _, shared := b.st.(*memstore.Store); !shared {
		if err := b.st.Close(); err != nil {
			t.Fatal(err)
		}
	}
	st := open()
	t.Cleanup(func() {
		if _, shared := st.(*memstore.Store); !shared {
			_ = st.Close()
		}
	})
	return startBroker(t, cfg, withStore(st), withClock(b.clock))
}

func TestRestartRecovery(t *testing.T) {
	for name, kind := range storeKinds {
		t.Run(name, func(t *testing.T) {
			open := kind(t)
			cfg := testConfig()
			b := startBroker(t, cfg, withStore(open()))
			props := packet.Properties{SessionExpiryInterval: u32(3600)}

			sub := dialRaw(t, b.addr, packet.V5)
			sub.connect(&packet.Connect{ClientID: "rs", CleanStart: true, Properties: props})
			sub.subscribe(1, 0, packet.Subscription{Filter: "rs/#", QoS: 2})
			pub := dialRaw(t, b.addr, packet.V5)
			pub.connect(&packet.Connect{ClientID: "rspub", CleanStart: true})
			publishQoS1(t, pub, "rs/a", "inflight")
			first := sub.recvPublish() // left unacknowledged
			sub.nc.Close()
			eventually(t, 5*time.Second, "subscriber offline", func() bool { i, _ := b.srv.Session("rs"); return !i.Online })
			const n = 100
			payloads := make([]string, n)
			for i := range payloads {
				payloads[i] = strconv.Itoa(i)
			}
			publishQoS1(t, pub, "rs/a", payloads...)
			pub.send(&packet.Publish{QoS: 1, PacketID: 999, Retain: true, Topic: "rs/ret", Payload: []byte("kept")})
			pub.recv()

			b = restart(t, b, cfg, open)
			info, ok := b.srv.Session("rs")
			if !ok || info.QueuedMessages != n+2 || info.Online {
				t.Fatalf("recovered session %+v (ok=%v)", info, ok)
			}
			sub = dialRaw(t, b.addr, packet.V5)
			if ack := sub.connect(&packet.Connect{ClientID: "rs", Properties: props}); !ack.SessionPresent {
				t.Fatal("session not present after restart")
			}
			again := sub.recvPublish()
			if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != "inflight" {
				t.Fatalf("resend after restart %+v", again)
			}
			sub.send(&packet.Puback{PacketID: again.PacketID})
			var got []string
			for len(got) < n+1 {
				p := sub.recvPublish()
				if p.Dup {
					t.Fatalf("DUP set on a first delivery: %+v", p)
				}
				got = append(got, string(p.Payload))
				sub.send(&packet.Puback{PacketID: p.PacketID})
			}
			for i := range n {
				if got[i] != strconv.Itoa(i) {
					t.Fatalf("order after restart: %v", got)
				}
			}
			if got[n] != "kept" {
				t.Fatalf("retained message %q", got[n])
			}
			// The retained message survived too.
			late := dialRaw(t, b.addr, packet.V5)
			late.connect(&packet.Connect{ClientID: "late", CleanStart: true})
			late.subscribe(1, 0, packet.Subscription{Filter: "rs/ret", QoS: 0})
			if p := late.recvPublish(); !p.Retain || string(p.Payload) != "kept" {
				t.Fatalf("retained after restart %+v", p)
			}
		})
	}
}

func TestExpiryAcrossRestart(t *testing.T) {
	for name, kind := range storeKinds {
		t.Run(name, func(t *testing.T) {
			open := kind(t)
			cfg := testConfig()
			b := startBroker(t, cfg, withStore(open()))
			for id, exp := range map[string]uint32{"short": 10, "long": 1000} {
				c := dialRaw(t, b.addr, packet.V5)
				c.connect(&packet.Connect{ClientID: id, CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: u32(exp)}})
				c.send(&packet.Disconnect{})
				c.expectClosed()
				waitOffline(t, b, id)
			}
			// "online" was connected when the broker was killed (its record
			// has no disconnection time): it counts as disconnected at
			// recovery time.
			b.stop()
			var batch store.Batch
			batch.PutSession(&store.Session{ClientID: "online", ProtocolVersion: 5, ExpiryInterval: 10, CreatedAt: b.clock.Now()})
			if err := b.st.Commit(context.Background(), &batch); err != nil {
				t.Fatal(err)
			}
			b.clock.Advance(20 * time.Second)
			b = restart(t, b, cfg, open)
			if _, ok := b.srv.Session("short"); ok {
				t.Fatal("a session that expired while the broker was down was recovered")
			}
			if _, ok := b.srv.Session("long"); !ok {
				t.Fatal("long session lost")
			}
			if _, ok := b.srv.Session("online"); !ok {
				t.Fatal("session online at shutdown lost")
			}
			b.clock.Advance(11 * time.Second)
			eventually(t, 5*time.Second, "expiry of the session online at shutdown", func() bool {
				_, ok := b.srv.Session("online")
				return !ok
			})
		})
	}
}
