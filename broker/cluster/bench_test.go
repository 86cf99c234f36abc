package cluster

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

// BenchmarkCommitOutcome commits small batches through a 3-member
// cluster, the outcome of each waited for by the member's one waiter
// (waiter) or, as before it, by a goroutine started per commit
// (goroutine-per-commit, re-implemented here), alternated in one run on
// one cluster. Two shapes: "engine" is how the engine's committer commits
// (one goroutine puts groups in the log, 4 in flight, another
// waits for them in order); "16-callers" is 16 goroutines each committing
// and waiting in turn (Commit).
func BenchmarkCommitOutcome(b *testing.B) {
	c := newTestCluster(b, 3, fastTiming)
	st := c.nodes[c.leader()].Store().(*replStore)
	// The way before the waiter: Apply, and a goroutine per commit waits.
	perCommitNoWait := func(bt *store.Batch) (func() error, error) {
		data, err := bt.MarshalBinary()
		if err != nil {
			return nil, err
		}
		f := st.raft.Apply(data, st.applyTimeout)
		res := make(chan error, 1)
		go func() { res <- applyOutcome(f) }()
		return func() error {
			select {
			case err := <-res:
				return err
			case <-st.done:
				return errStoppedUnknown
			}
		}, nil
	}
	waiterNoWait := func(bt *store.Batch) (func() error, error) { return st.CommitNoWait(bg, bt) }
	var next atomic.Uint64
	batch := func() *store.Batch {
		bt := &store.Batch{}
		bt.PutMessage(&store.Message{ID: next.Add(1), Topic: "bench/outcome", Payload: make([]byte, 64), QoS: 1})
		return bt
	}
	engine := func(b *testing.B, commit func(*store.Batch) (func() error, error)) {
		b.ReportAllocs()
		waits := make(chan func() error, 4) // the engine committer's pipeline depth
		done := make(chan struct{})
		go func() {
			defer close(done)
			for w := range waits {
				if err := w(); err != nil {
					b.Error(err)
				}
			}
		}()
		for range b.N {
			w, err := commit(batch())
			if err != nil {
				b.Fatal(err)
			}
			waits <- w
		}
		close(waits)
		<-done
	}
	callers := func(b *testing.B, commit func(*store.Batch) (func() error, error)) {
		const workers = 16
		b.ReportAllocs()
		var wg sync.WaitGroup
		for w := range workers {
			n := b.N / workers
			if w < b.N%workers {
				n++
			}
			wg.Go(func() {
				for range n {
					wait, err := commit(batch())
					if err == nil {
						err = wait()
					}
					if err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
	}
	// Alternated within the run, so both see the same machine and store.
	for range outcomeRounds {
		for _, shape := range []struct {
			name string
			run  func(*testing.B, func(*store.Batch) (func() error, error))
		}{{"engine", engine}, {"16-callers", callers}} {
			b.Run(shape.name+"/waiter", func(b *testing.B) { shape.run(b, waiterNoWait) })
			b.Run(shape.name+"/goroutine-per-commit", func(b *testing.B) { shape.run(b, perCommitNoWait) })
		}
	}
}

// outcomeRounds is how many times BenchmarkCommitOutcome alternates its
// two ways (benchmark names gain #01, #02, ... after the first).
const outcomeRounds = 4

// BenchmarkCommitSerial commits one small batch at a time and waits for
// it (window 1: what one publisher waiting for each PUBACK costs), through
// a single Pebble store in sync mode and through a 3-member cluster in
// this process, and reports the median and 90th percentile of a commit.
// Run it with -trace to see where a replicated commit's time goes.
func BenchmarkCommitSerial(b *testing.B) {
	run := func(b *testing.B, st store.Store) {
		ctx := context.Background()
		if err := st.Commit(ctx, func() *store.Batch {
			bt := &store.Batch{}
			bt.PutSession(&store.Session{ClientID: "sub", ProtocolVersion: 5, ExpiryInterval: 3600})
			return bt
		}()); err != nil {
			b.Fatal(err)
		}
		lat := make([]time.Duration, 0, b.N)
		b.ResetTimer()
		for i := range b.N {
			id := st.NextMessageID()
			bt := &store.Batch{}
			bt.PutMessage(&store.Message{ID: id, Topic: "bench/serial", Payload: make([]byte, 64), QoS: 1})
			bt.Enqueue("sub", &store.QueueEntry{Seq: uint64(i + 1), MessageID: id, QoS: 1})
			t0 := time.Now()
			if err := st.Commit(ctx, bt); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t0))
		}
		b.StopTimer()
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*9/10].Microseconds()), "p90-µs")
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
