package engine

import (
	"bufio"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// BenchmarkQoS1Throughput measures QoS 1 publish -> deliver -> acknowledge
// through the server on loopback: one publisher with 64 messages in
// flight, one subscriber (persistent session, so every message goes
// through the store) acknowledging everything.
func BenchmarkQoS1Throughput(b *testing.B) {
	b.Run("memstore", func(b *testing.B) { benchQoS1(b, memstore.New()) })
	b.Run("pebble-sync", func(b *testing.B) {
		st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{Durability: pebblestore.Sync})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() }) // after the broker's drain (cleanups run last-in first-out)
		benchQoS1(b, st)
	})
}

func benchQoS1(b *testing.B, st store.Store) {
	cfg := testConfig()
	cfg.Queues.MaxQueuedMessages = 1 << 20
	cfg.Queues.MaxQueuedBytes = 1 << 30
	cfg.Limits.MaxInflight = 256
	cfg.Durability.Mode = config.DurabilitySync
	cfg.DataDir = b.TempDir()
	tb := startBroker(b, cfg, withStore(st))
	sub := dialRaw(b, tb.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "bsub", CleanStart: true,
		Properties: packet.Properties{SessionExpiryInterval: u32(600), ReceiveMaximum: u16(256)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "bench", QoS: 1})
	pub := dialRaw(b, tb.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "bpub", CleanStart: true})

	payload := make([]byte, 64)
	// connect and subscribe left 5 s read deadlines; a run may take longer.
	_ = sub.nc.SetReadDeadline(time.Time{})
	_ = pub.nc.SetReadDeadline(time.Time{})
	done := make(chan error, 2)
	go func() { done <- subscriberLoop(sub, b.N) }()
	sem := make(chan struct{}, 64)
	go func() { done <- ackLoop(pub, b.N, sem) }()
	b.SetBytes(int64(len(payload)))
	b.ResetTimer()
	w := bufio.NewWriter(pub.nc)
	for i := range b.N {
		select {
		case sem <- struct{}{}:
		case err := <-done: // a loop failed: no acknowledgement frees sem again
			b.Fatalf("after %d publishes: %v", i, err)
		}
		p := &packet.Publish{QoS: 1, PacketID: uint16(i%60000) + 1, Topic: "bench", Payload: payload}
		if err := packet.Write(w, p, packet.V5); err != nil {
			b.Fatal(err)
		}
		if len(sem) == cap(sem) || i == b.N-1 {
			if err := w.Flush(); err != nil {
				b.Fatal(err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	for range 2 {
		if err := <-done; err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
}

func subscriberLoop(c *rawClient, n int) error {
	w := bufio.NewWriter(c.nc)
	for range n {
		p, err := c.r.ReadPacket()
		if err != nil {
			return err
		}
		pub, ok := p.(*packet.Publish)
		if !ok {
			continue
		}
		if err := packet.Write(w, &packet.Puback{PacketID: pub.PacketID}, packet.V5); err != nil {
			return err
		}
		if c.r.R.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

func ackLoop(c *rawClient, n int, sem chan struct{}) error {
	for range n {
		if _, err := c.r.ReadPacket(); err != nil {
			return err
		}
		<-sem
	}
	return nil
}

// BenchmarkQoS1Window1 measures the round trip of one QoS 1 publish with
// one message in flight, the way most devices publish: PUBLISH, the
// delivery to the one online subscriber (which acknowledges it) and the
// PUBACK to the publisher, then the next. clean: a clean-session
// subscriber (nothing to store); persistent: a persistent subscriber
// over Pebble in sync mode (one fsync per message).
func BenchmarkQoS1Window1(b *testing.B) {
	pebble := func(b *testing.B) store.Store {
		st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{Durability: pebblestore.Sync})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = st.Close() })
		return st
	}
	b.Run("clean-memstore", func(b *testing.B) { benchWindow1(b, memstore.New(), false) })
	b.Run("clean-pebble-sync", func(b *testing.B) { benchWindow1(b, pebble(b), false) })
	b.Run("persistent-pebble-sync", func(b *testing.B) { benchWindow1(b, pebble(b), true) })
}

func benchWindow1(b *testing.B, st store.Store, persistent bool) {
	cfg := testConfig()
	cfg.Durability.Mode = config.DurabilitySync
	cfg.DataDir = b.TempDir()
	tb := startBroker(b, cfg, withStore(st))
	sub := dialRaw(b, tb.addr, packet.V5)
	cp := &packet.Connect{ClientID: "bsub", CleanStart: true}
	if persistent {
		cp.Properties.SessionExpiryInterval = u32(600)
	}
	sub.connect(cp)
	sub.subscribe(1, 0, packet.Subscription{Filter: "bench", QoS: 1})
	pub := dialRaw(b, tb.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "bpub", CleanStart: true})
	_ = sub.nc.SetReadDeadline(time.Time{})
	_ = pub.nc.SetReadDeadline(time.Time{})
	payload := make([]byte, 64)
	b.ResetTimer()
	for i := range b.N {
		id := uint16(i%60000) + 1
		if err := packet.Write(pub.nc, &packet.Publish{QoS: 1, PacketID: id, Topic: "bench", Payload: payload}, packet.V5); err != nil {
			b.Fatal(err)
		}
		got, err := sub.r.ReadPacket()
		if err != nil {
			b.Fatal(err)
		}
		d, ok := got.(*packet.Publish)
		if !ok {
			b.Fatalf("subscriber got %s, want PUBLISH", got.Type())
		}
		if err := packet.Write(sub.nc, &packet.Puback{PacketID: d.PacketID}, packet.V5); err != nil {
			b.Fatal(err)
		}
		if got, err = pub.r.ReadPacket(); err != nil {
			b.Fatal(err)
		}
		if _, ok := got.(*packet.Puback); !ok {
			b.Fatalf("publisher got %s, want PUBACK", got.Type())
		}
	}
	b.StopTimer()
}
