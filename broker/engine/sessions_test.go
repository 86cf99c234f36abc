package engine

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

// Connections with the same client ID connecting at once: each takes the
// previous one over; in the end exactly one holds the persistent session
// and every other connection and goroutine is gone.
func TestConcurrentTakeover(t *testing.T) {
	b := startBroker(t, nil)
	base := settledGoroutines()
	const n = 8
	clients := make([]*rawClient, n)
	var wg sync.WaitGroup
	for i := range clients {
		clients[i] = dialRaw(t, b.addr, packet.V5)
		wg.Add(1)
		go func(c *rawClient) {
			defer wg.Done()
			c.send(&packet.Connect{ProtocolVersion: packet.V5, ClientID: "same",
				Properties: packet.Properties{SessionExpiryInterval: u32(600)}})
		}(clients[i])
	}
	wg.Wait()
	eventually(t, 15*time.Second, "a single connection", func() bool {
		i, ok := b.srv.Session("same")
		return b.srv.Stats().Connections == 1 && ok && i.Online && i.Persistent
	})
	// The survivor works.
	var alive *rawClient
	for _, c := range clients {
		if alive == nil && readsConnackAndStaysOpen(c) {
			alive = c
		}
	}
	if alive == nil {
		t.Fatal("no connection survived")
	}
	alive.send(&packet.Pingreq{})
	if _, ok := alive.recv().(*packet.Pingresp); !ok {
		t.Fatal("survivor does not answer")
	}
	for _, c := range clients {
		_ = c.nc.Close()
	}
	eventually(t, 5*time.Second, "no connection", func() bool { return b.srv.Stats().Connections == 0 })
	waitGoroutines(t, base, 5*time.Second)
}

// readsConnackAndStaysOpen reports whether c got a successful CONNACK and
// was not closed after it.
func readsConnackAndStaysOpen(c *rawClient) bool {
	p, err := c.tryRecv(time.Second)
	if ack, ok := p.(*packet.Connack); err != nil || !ok || ack.ReasonCode != packet.Success {
		return false
	}
	_, err = c.tryRecv(100 * time.Millisecond)
	return err != nil && !isClosed(err) // a timeout: still open
}

// The will is published when the session ends, if that comes before the
// will delay (section 3.1.3.2.2).
func TestWillDelayCappedBySessionExpiry(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, nil, withClock(clock))
	watch := dialRaw(t, b.addr, packet.V5)
	watch.connect(&packet.Connect{ClientID: "watch", CleanStart: true})
	watch.subscribe(1, 0, packet.Subscription{Filter: "will/#"})
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "short", CleanStart: true, WillFlag: true,
		WillTopic: "will/short", WillPayload: []byte("bye"),
		Properties:     packet.Properties{SessionExpiryInterval: u32(10)},
		WillProperties: packet.Properties{WillDelayInterval: u32(60)}})
	_ = c.nc.Close()
	waitOffline(t, b, "short")
	clock.Advance(11 * time.Second)
	if p := watch.recvPublish(); p.Topic != "will/short" {
		t.Fatalf("got %+v", p)
	}
	eventually(t, 5*time.Second, "session expired", func() bool { _, ok := b.srv.Session("short"); return !ok })
}

// Drain lets the commits of acknowledged work finish: a publish whose
// commit is running when the drain starts is in the store afterwards.
func TestDrainWaitsForInflightCommits(t *testing.T) {
	st := newGatedStore(memstore.New())
	b := startBroker(t, nil, withStore(st))
	t.Cleanup(st.release)
	offlineSubscriber(t, b, "off", "d", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	st.hold()
	pub.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "d", Payload: []byte("kept")})
	eventually(t, 5*time.Second, "the commit to start", func() bool { return st.waiting.Load() > 0 })
	drained := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = b.ln.Close()
		drained <- b.srv.Drain(ctx)
	}()
	select {
	case err := <-drained:
		t.Fatalf("drain returned %v with a commit still running", err)
	case <-time.After(200 * time.Millisecond):
	}
	st.release()
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	var queued int64
	err := st.LoadSessions(func(s *store.SessionState) error {
		if s.Session.ClientID == "off" {
			queued = s.Queue.Messages
		}
		return nil
	})
	if err != nil || queued != 1 {
		t.Fatalf("queued %d (err %v), want the message stored", queued, err)
	}
}

// A subscriber that stops reading loses QoS 0 messages (counted) but holds
// up neither the publisher nor the other subscribers.
func TestSlowConsumerDoesNotBlockOthers(t *testing.T) {
	b := startBroker(t, nil)
	healthy := dialRaw(t, b.addr, packet.V5)
	healthy.connect(&packet.Connect{ClientID: "healthy", CleanStart: true})
	healthy.subscribe(1, 0, packet.Subscription{Filter: "other", QoS: 1})
	stalledSubscriber(t, b, "stuck")
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub2", CleanStart: true})
	start := time.Now()
	for i := range 20 {
		pub.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "other", Payload: []byte("x")})
		if _, ok := pub.recv().(*packet.Puback); !ok {
			t.Fatal("expected PUBACK")
		}
		p := healthy.recvPublish()
		healthy.send(&packet.Puback{PacketID: p.PacketID})
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("20 round trips took %v next to a stalled subscriber", el)
	}
	if b.srv.Stats().Drops[DropSlowConsumer] == 0 {
		t.Fatal("slow consumer drops not counted")
	}
}

// Clean start on a persistent session discards it, in the store too: the
// messages queued for the old session never reach the new one, also after
// a restart.
func TestCleanStartDiscardsStoredSession(t *testing.T) {
	for name, kind := range storeKinds {
		t.Run(name, func(t *testing.T) {
			open := kind(t)
			cfg := testConfig()
			b := startBroker(t, cfg, withStore(open()))
			offlineSubscriber(t, b, "cs", "cs/#", 1)
			pub := dialRaw(t, b.addr, packet.V5)
			pub.connect(&packet.Connect{ClientID: "cs-pub", CleanStart: true})
			publishQoS1(t, pub, "cs/x", "old-1", "old-2")
			persist := packet.Properties{SessionExpiryInterval: u32(3600)}
			c := dialRaw(t, b.addr, packet.V5)
			if ack := c.connect(&packet.Connect{ClientID: "cs", CleanStart: true, Properties: persist}); ack.SessionPresent {
				t.Fatal("clean start resumed the session")
			}
			c.expectNothing(100 * time.Millisecond)
			c.send(&packet.Disconnect{})
			c.expectClosed()
			waitOffline(t, b, "cs")
			b = restart(t, b, cfg, open)
			again := dialRaw(t, b.addr, packet.V5)
			ack := again.connect(&packet.Connect{ClientID: "cs", Properties: persist})
			if !ack.SessionPresent {
				t.Fatal("the new persistent session was not kept")
			}
			again.expectNothing(200 * time.Millisecond)
			if i, _ := b.srv.Session("cs"); i.QueuedMessages != 0 || i.Subscriptions != 0 {
				t.Fatalf("old session state survived: %+v", i)
			}
		})
	}
}
