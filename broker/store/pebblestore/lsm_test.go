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
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if lsm, ok := s.LSM(); ok {
		t.Fatalf("closed store reported %+v", lsm)
	}
}
