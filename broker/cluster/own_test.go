package cluster

import (
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// TestMergedBatchRecycledByTheFSMOnly: a group's merged batch is reused
// once the FSM that applied it answered its committer, never when
// waitOutcomes answered first (Raft's future may fail while the FSM still
// applies the entry, so the batch may still be read), and a committer's
// own batch (a group of one) is never touched.
func TestMergedBatchRecycledByTheFSMOnly(t *testing.T) {
	s := &replStore{}
	batch := func() *store.Batch {
		b := &store.Batch{}
		b.Dequeue("c", 1)
		b.Dequeue("c", 2)
		return b
	}
	put := func(b *store.Batch, merged bool) ([]byte, chan error) {
		data := []byte{2, 0}
		res := make(chan error, 1)
		s.inflight.Add(1)
		s.setOwn(&data[0], ownEntry{b: b, res: res, merged: merged})
		return data, res
	}

	// The FSM answers a merged batch: recycled (emptied) after the answer.
	b := batch()
	data, res := put(b, true)
	if got := s.ownBatch(data); got != b {
		t.Fatalf("ownBatch: %p, want %p", got, b)
	}
	s.answerOwn(data, nil)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if len(b.Ops) != 0 {
		t.Errorf("merged batch answered by the FSM: %d ops left, want it recycled", len(b.Ops))
	}

	// waitOutcomes answers first: the FSM may still read it, so it stays.
	b = batch()
	data, res = put(b, true)
	if e := s.takeOwn(&data[0]); e.res != nil {
		e.res <- nil
	}
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	s.answerOwn(data, nil) // the FSM, later: nothing to answer
	if len(b.Ops) != 2 {
		t.Errorf("merged batch answered by waitOutcomes: %d ops, want 2 (not recycled)", len(b.Ops))
	}

	// A committer's own batch is never recycled.
	b = batch()
	data, res = put(b, false)
	s.answerOwn(data, nil)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if len(b.Ops) != 2 {
		t.Errorf("a committer's batch: %d ops, want 2 (not recycled)", len(b.Ops))
	}
	if n := s.inflight.Load(); n != 0 {
		t.Errorf("inflight %d after every entry was answered", n)
	}
}
