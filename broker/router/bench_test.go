package router_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// BenchmarkRouteOffline measures the fan-out of one QoS 1 message to 100
// offline persistent sessions (the "ingest" load scenario without the
// store): Route into a fresh batch, then Settle and Release. inflight routes are
// outstanding before the oldest is settled, as under group commit, so each
// session has that many uncommitted entries.
func BenchmarkRouteOffline(b *testing.B) {
	for _, inflight := range []int{1, 256} {
		b.Run(fmt.Sprintf("inflight=%d", inflight), func(b *testing.B) { benchRouteOffline(b, 100, inflight) })
	}
}

func benchRouteOffline(b *testing.B, sessions, inflight int) {
	r := router.New()
	rd := memstore.New()
	now := func() time.Time { return time.Unix(1e9, 0) }
	for i := range sessions {
		id := fmt.Sprintf("load-in-%d", i)
		s := session.New(store.Session{ClientID: id, ExpiryInterval: 3600}, nil, &session.Env{Reader: rd, Now: now})
		if _, err := r.Subscribe(id, s, store.Subscription{Filter: "load/in/#", QoS: 1}); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 64)
	ring := make([]*router.Fanout, inflight)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		m := &store.Message{ID: uint64(i + 1), Topic: "load/in/3", QoS: 1, Payload: payload, PublishedAt: now()}
		var batch store.Batch
		f := r.Route(m, false, &batch)
		if f.Stored != sessions {
			b.Fatalf("stored %d", f.Stored)
		}
		k := i % inflight
		if ring[k] != nil {
			ring[k].Settle(true)
			ring[k].Release()
		}
		ring[k] = f
	}
	for _, f := range ring {
		if f != nil {
			f.Settle(true)
		}
	}
}

// BenchmarkSettleGroup settles the fan-outs of one group commit (64
// publishes to 100 offline sessions) one entry at a time, as Fanout.Settle
// does, or per session with a Settlement.
func BenchmarkSettleGroup(b *testing.B) {
	for _, grouped := range []bool{false, true} {
		b.Run(fmt.Sprintf("grouped=%v", grouped), func(b *testing.B) { benchSettleGroup(b, grouped) })
	}
}

func benchSettleGroup(b *testing.B, grouped bool) {
	const sessions, group = 100, 64
	r := router.New()
	now := func() time.Time { return time.Unix(1e9, 0) }
	for i := range sessions {
		id := fmt.Sprintf("load-in-%d", i)
		s := session.New(store.Session{ClientID: id, ExpiryInterval: 3600}, nil, &session.Env{Now: now})
		if _, err := r.Subscribe(id, s, store.Subscription{Filter: "load/in/#", QoS: 1}); err != nil {
			b.Fatal(err)
		}
	}
	payload := make([]byte, 64)
	fs := make([]*router.Fanout, group)
	var st router.Settlement
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for k := range fs {
			m := &store.Message{ID: uint64(i*group + k + 1), Topic: "load/in/3", QoS: 1, Payload: payload}
			fs[k] = r.Route(m, false, &store.Batch{})
		}
		b.StartTimer()
		if grouped {
			st.Settle(fs, true)
		}
		for _, f := range fs {
			f.Settle(true)
			f.Release()
		}
	}
}

// BenchmarkRouteOfflineFull measures what one QoS 1 message costs when it
// is fanned out to 100 offline persistent sessions whose queues are at
// their limit (1,000 messages, DropOldest: each drops its oldest entry),
// with the durable store (the cluster bench's full-queues row without the
// network): the publishes of a group commit are routed into one batch,
// committed (interval durability, no fsync wait) and settled.
func BenchmarkRouteOfflineFull(b *testing.B) {
	const sessions, limit, group = 100, 1000, 64
	st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{Durability: pebblestore.Interval})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r := router.New()
	now := func() time.Time { return time.Unix(1e9, 0) }
	env := &session.Env{Reader: st, Now: now}
	lim := &session.Limits{MaxMessages: limit, MaxBytes: 1 << 30, Policy: session.DropOldest}
	var setup store.Batch
	for i := range sessions {
		id := fmt.Sprintf("load-in-%d", i)
		rec := store.Session{ClientID: id, ExpiryInterval: 3600}
		setup.PutSession(&rec)
		s := session.New(rec, lim, env)
		if _, err := r.Subscribe(id, s, store.Subscription{Filter: "load/in/#", QoS: 1}); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Commit(context.Background(), &setup); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 64)
	id := uint64(0)
	publish := func(n int) {
		fs := make([]*router.Fanout, 0, group)
		for n > 0 {
			var batch store.Batch
			fs = fs[:0]
			for range min(n, group) {
				id++
				m := &store.Message{ID: id, Topic: "load/in/3", QoS: 1, Payload: payload, PublishedAt: now()}
				fs = append(fs, r.Route(m, false, &batch))
			}
			n -= len(fs)
			err := st.Commit(context.Background(), &batch)
			for _, f := range fs {
				f.Settle(err == nil)
				f.Release()
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	publish(limit) // every queue at its limit
	b.ReportAllocs()
	b.ResetTimer()
	publish(b.N)
	b.StopTimer()
	if got := st.Stats().Messages; got != limit {
		b.Fatalf("store holds %d messages, want the newest %d", got, limit)
	}
}
