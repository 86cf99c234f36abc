package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// BenchmarkCommitFanout commits what an ingest publish commits (one
// message queued for 100 offline sessions) from 16 goroutines, through a
// single Pebble store in sync mode and through a 3-member cluster (all in
// this process, so the cluster's figure includes every member's work).
func BenchmarkCommitFanout(b *testing.B) {
	const sessions, workers = 100, 16
	run := func(b *testing.B, st store.Store) {
		ctx := context.Background()
		setup := &store.Batch{}
		for i := range sessions {
			setup.PutSession(&store.Session{ClientID: fmt.Sprintf("s%d", i), ProtocolVersion: 5, ExpiryInterval: 3600})
		}
		if err := st.Commit(ctx, setup); err != nil {
			b.Fatal(err)
		}
		var seq atomic.Uint64
		var mu sync.Mutex // queues grow in Seq order: one committer at a time per Seq, as the engine's committer does
		b.ResetTimer()
		var wg sync.WaitGroup
		per := b.N / workers
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range per {
					mu.Lock()
					s := seq.Add(1)
					bt := &store.Batch{}
					id := st.NextMessageID()
					bt.PutMessage(&store.Message{ID: id, Topic: "load/in/1", Payload: make([]byte, 64), QoS: 1})
					for i := range sessions {
						bt.Enqueue(fmt.Sprintf("s%d", i), &store.QueueEntry{Seq: s, MessageID: id, QoS: 1})
					}
					var wait func() error
					var err error
					if p, ok := st.(store.Pipeliner); ok {
						wait, err = p.CommitNoWait(ctx, bt)
					} else {
						err = st.Commit(ctx, bt)
					}
					mu.Unlock()
					if err == nil && wait != nil {
						err = wait()
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
	}
	b.Run("single-sync", func(b *testing.B) {
		st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer st.Close()
		run(b, st)
	})
	b.Run("cluster-3", func(b *testing.B) {
		c := newTestCluster(b, 3, fastTiming)
		run(b, c.nodes[c.leader()].Store())
	})
}

// BenchmarkCommitOutcome commits small batches from 16 goroutines through
// a 3-member cluster, the outcome of each waited for by the member's one
// waiter (waiter) or, as before it, by a goroutine started per commit
// (goroutine-per-commit, re-implemented here), so both run side by side in
// one run. One cluster serves both, alternately with -count.
func BenchmarkCommitOutcome(b *testing.B) {
	const workers = 16
	c := newTestCluster(b, 3, fastTiming)
	st := c.nodes[c.leader()].Store().(*replStore)
	perCommitGoroutine := func(ctx context.Context, bt *store.Batch) error {
		data, err := bt.MarshalBinary()
		if err != nil {
			return err
		}
		f := st.raft.Apply(data, st.applyTimeout)
		res := make(chan error, 1)
		go func() { res <- applyOutcome(f) }()
		select {
		case err := <-res:
			return err
		case <-st.done:
			return errStoppedUnknown
		}
	}
	var next atomic.Uint64
	run := func(b *testing.B, commit func(context.Context, *store.Batch) error) {
		ctx := context.Background()
		b.ReportAllocs()
		b.ResetTimer()
		var wg sync.WaitGroup
		for w := range workers {
			n := b.N / workers
			if w < b.N%workers {
				n++
			}
			wg.Go(func() {
				for range n {
					bt := &store.Batch{}
					bt.PutMessage(&store.Message{ID: next.Add(1), Topic: "bench/outcome", Payload: make([]byte, 64), QoS: 1})
					if err := commit(ctx, bt); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	b.Run("waiter", func(b *testing.B) { run(b, st.Commit) })
	b.Run("goroutine-per-commit", func(b *testing.B) { run(b, perCommitGoroutine) })
}
