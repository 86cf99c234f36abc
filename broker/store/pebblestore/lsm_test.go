package pebblestore

import (
	"context"
	"testing"

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
	if o := s.pebbleOptions(); lsm.L0StopWritesSublevels != int64(o.L0StopWritesThreshold) || o.L0CompactionThreshold*2 > o.L0StopWritesThreshold {
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
