package pebblestore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// commitLoad runs total commits from committers goroutines, each fanning
// one 64-byte message out to fanout sessions of its own, and returns the
// elapsed time.
func commitLoad(b *testing.B, s *Store, committers, fanout, total int, noSync bool) time.Duration {
	b.Helper()
	sessions := make([][]string, committers)
	var setup store.Batch
	for c := range sessions {
		for f := range fanout {
			id := fmt.Sprintf("c%d-%d", c, f)
			sessions[c] = append(sessions[c], id)
			setup.PutSession(&store.Session{ClientID: id})
		}
	}
	if err := s.Commit(context.Background(), &setup); err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 64)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, committers)
	start := time.Now()
	wg.Add(committers)
	for c := range committers {
		go func() {
			defer wg.Done()
			var batch store.Batch
			for seq := uint64(1); next.Add(1) <= int64(total); seq++ {
				batch.Reset()
				batch.NoSync = noSync
				id := s.NextMessageID()
				batch.PutMessage(&store.Message{ID: id, Topic: "bench/t", Payload: payload, QoS: 1})
				for _, sess := range sessions[c] {
					batch.Enqueue(sess, &store.QueueEntry{Seq: seq, MessageID: id, QoS: 1})
				}
				if err := s.Commit(context.Background(), &batch); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return elapsed
}

// BenchmarkCommit measures Sync-mode commit throughput by number of
// concurrent committers and fan-out, reporting commits/s, commits per WAL
// fsync (group commit at work) and the throughput of NoSync commits of the
// same shape measured in the same run, as a ratio.
func BenchmarkCommit(b *testing.B) {
	cases := []struct{ committers, fanout int }{{1, 1}, {16, 1}, {64, 1}, {1, 100}, {16, 100}}
	for _, c := range cases {
		b.Run(fmt.Sprintf("committers=%d/fanout=%d", c.committers, c.fanout), func(b *testing.B) {
			var syncs atomic.Int64
			s := openT(b, b.TempDir(), Options{fs: walSyncCounter(&syncs)})
			defer s.Close()
			total := max(b.N, c.committers)
			syncs.Store(0)
			b.ResetTimer()
			elapsed := commitLoad(b, s, c.committers, c.fanout, total, false)
			b.StopTimer()
			fsyncs := syncs.Load()
			s2 := openT(b, b.TempDir(), Options{})
			defer s2.Close()
			noSync := commitLoad(b, s2, c.committers, c.fanout, total, true)
			rate := float64(total) / elapsed.Seconds()
			b.ReportMetric(rate, "commits/s")
			b.ReportMetric(float64(total*c.fanout)/elapsed.Seconds(), "entries/s")
			b.ReportMetric(float64(total)/float64(max(fsyncs, 1)), "commits/fsync")
			b.ReportMetric(float64(total)/noSync.Seconds()/rate, "nosync/sync")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkReadQueue measures draining a queue in ReadQueue chunks.
func BenchmarkReadQueue(b *testing.B) {
	s := openT(b, b.TempDir(), Options{})
	defer s.Close()
	const n = 10000
	commitLoad(b, s, 1, 1, n, true)
	b.ResetTimer()
	for range b.N {
		read := 0
		if err := s.ReadQueue("c0-0", 0, 0, func(store.QueueEntry, *store.Message) bool { read++; return true }); err != nil || read != n {
			b.Fatalf("read %d: %v", read, err)
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "entries/s")
}

// BenchmarkOpen measures recovery time of a store with queued messages.
func BenchmarkOpen(b *testing.B) {
	dir := b.TempDir()
	s := openT(b, dir, Options{})
	const committers, per = 100, 1000 // 100,000 entries in 100 sessions
	commitLoad(b, s, committers, 1, committers*per, true)
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		s := openT(b, dir, Options{})
		if got := s.Stats().Messages; got != committers*per {
			b.Fatalf("messages = %d", got)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
	}
}
