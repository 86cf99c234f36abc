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

// BenchmarkApplyReplicatedFanout measures what a cluster follower does
// for each committed entry of the ingest row: decode a log entry (format
// 2) of msgs messages, each queued to the same fanout offline sessions,
// and apply it. One op is one message; Pebble's flushes and compactions
// run beside it, as on a member.
func BenchmarkApplyReplicatedFanout(b *testing.B) {
	const msgs, fanout = 20, 100
	s := openT(b, b.TempDir(), Options{Durability: Interval, NoWAL: true})
	defer s.Close()
	var setup store.Batch
	sessions := make([]string, fanout)
	for i := range sessions {
		sessions[i] = fmt.Sprintf("in-%04d", i)
		setup.PutSession(&store.Session{ClientID: sessions[i], ProtocolVersion: 5, ExpiryInterval: 3600})
	}
	data, err := setup.MarshalBinaryFormat(2)
	if err != nil {
		b.Fatal(err)
	}
	var dec store.Decoder
	var batch store.Batch
	index := uint64(1)
	apply := func(data []byte) {
		if err := dec.Decode(&batch, data); err != nil {
			b.Fatal(err)
		}
		if errs := s.ApplyReplicatedBatchTerms([]uint64{index}, []uint64{1}, []*store.Batch{&batch}); errs[0] != nil {
			b.Fatal(errs[0])
		}
		dec.Reset()
		index++
	}
	apply(data)
	payload := make([]byte, 64)
	id, seq := uint64(1), uint64(1)
	entry := func() []byte {
		var e store.Batch
		for range msgs {
			e.PutMessage(&store.Message{ID: id, Topic: "load/in/1", Payload: payload, QoS: 1})
			for _, c := range sessions {
				e.Enqueue(c, &store.QueueEntry{Seq: seq, MessageID: id, QoS: 1})
			}
			id++
			seq++
		}
		data, err := e.MarshalBinaryFormat(2)
		if err != nil {
			b.Fatal(err)
		}
		return data
	}
	b.ResetTimer()
	for done := 0; done < b.N; done += msgs {
		b.StopTimer()
		data := entry()
		b.StartTimer()
		apply(data)
	}
	b.ReportMetric(float64(b.N*fanout)/b.Elapsed().Seconds(), "entries/s")
}
