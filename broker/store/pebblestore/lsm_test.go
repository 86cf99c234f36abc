package pebblestore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// TestLSM: the tree's figures follow what the store did, and a closed
// store reports none rather than zeros.
func TestLSM(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Durability: Interval, NoWAL: true})
	before, ok := s.LSM()
	if !ok || before.Memtables < 1 || before.MemtableBytes <= 0 {
		t.Fatalf("new store: %+v %v", before, ok)
	}
	b := &store.Batch{}
	b.PutRetained(&store.Message{ID: 1, Topic: "t", Payload: make([]byte, 1000), QoS: 1, Retain: true})
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil { // without a WAL: a flush
		t.Fatal(err)
	}
	lsm, ok := s.LSM()
	if !ok || lsm.L0Files < 1 || lsm.Flushes != before.Flushes+1 {
		t.Fatalf("after a flush: %+v %v (before it: %+v)", lsm, ok, before)
	}
	// The bound reported is the one Pebble was opened with, and L0 is
	// compacted well before it (BollardStoreCompactionBehind fires at half).
	if o := s.pebbleOptions(); lsm.L0StopWritesSublevels != int64(o.L0StopWritesThreshold) || 2*l0CompactionDepth > o.L0StopWritesThreshold {
		t.Fatalf("L0 stop-writes bound reported %d; Pebble's options: compaction at %d, stop at %d",
			lsm.L0StopWritesSublevels, o.L0CompactionThreshold, o.L0StopWritesThreshold)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if lsm, ok := s.LSM(); ok {
		t.Fatalf("closed store reported %+v", lsm)
	}
}

// TestL0CompactionDepth: level 0 holds up to l0CompactionDepth sublevels
// and Pebble compacts it when a flush goes past them, not before (the
// depth the store's options and docs/durability.md give; Pebble's option
// is not the depth itself, see l0CompactionDepth).
func TestL0CompactionDepth(t *testing.T) {
	s := openT(t, t.TempDir(), Options{Durability: Interval, NoWAL: true})
	defer s.Close()
	ctx := context.Background()
	// Each flush writes a file spanning the same keys (the first and
	// last retained topics), as a fan-out's flush spans every queue: a
	// sublevel each.
	flush := func(i int) store.LSMStats {
		t.Helper()
		b := &store.Batch{}
		for _, topic := range []string{"a", "z"} {
			b.PutRetained(&store.Message{ID: uint64(2*i + len(topic)), Topic: topic, Payload: []byte(fmt.Sprint(i)), QoS: 1, Retain: true})
		}
		if err := s.Commit(ctx, b); err != nil {
			t.Fatal(err)
		}
		if err := s.Sync(ctx); err != nil { // without a WAL: a flush
			t.Fatal(err)
		}
		lsm, ok := s.LSM()
		if !ok {
			t.Fatal("no LSM figures")
		}
		return lsm
	}
	// A new store may hold a file of its own already: count from there.
	start, _ := s.LSM()
	n := int(start.L0Sublevels)
	for n < l0CompactionDepth {
		lsm := flush(n)
		n++
		if lsm.L0Sublevels != int64(n) || lsm.Compactions+lsm.CompactionsRunning != 0 {
			t.Fatalf("after %d flushes: %d sublevels, %d compactions (%d running); want %d and none up to %d sublevels",
				n-int(start.L0Sublevels), lsm.L0Sublevels, lsm.Compactions, lsm.CompactionsRunning, n, l0CompactionDepth)
		}
	}
	lsm := flush(n)
	for deadline := time.Now().Add(10 * time.Second); lsm.Compactions == 0; {
		if time.Now().After(deadline) {
			t.Fatalf("a flush past %d sublevels and no compaction after 10s: %+v", l0CompactionDepth, lsm)
		}
		time.Sleep(10 * time.Millisecond)
		lsm, _ = s.LSM()
	}
	if lsm.L0Sublevels > l0CompactionDepth {
		t.Fatalf("after the compaction: %d sublevels", lsm.L0Sublevels)
	}
}
