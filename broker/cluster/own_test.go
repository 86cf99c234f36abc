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
	var recycled []*store.Batch
	defer func(f func(*store.Batch)) { recycleMerged = f }(recycleMerged)
	recycleMerged = func(b *store.Batch) { recycled = append(recycled, b) }
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

	// The FSM answers a merged batch: recycled after the answer.
	b := batch()
	data, res := put(b, true)
	if got := s.ownBatch(data); got != b {
		t.Fatalf("ownBatch: %p, want %p", got, b)
	}
	s.answerOwn(data, nil)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if len(recycled) != 1 || recycled[0] != b {
		t.Errorf("merged batch answered by the FSM: recycled %v, want it (%p)", recycled, b)
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
	if len(recycled) != 1 {
		t.Errorf("merged batch answered by waitOutcomes: recycled %v, want only the first", recycled)
	}

	// A committer's own batch is never recycled.
	b = batch()
	data, res = put(b, false)
	s.answerOwn(data, nil)
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if len(recycled) != 1 {
		t.Errorf("a committer's batch: recycled %v, want only the first", recycled)
	}
	if n := s.inflight.Load(); n != 0 {
		t.Errorf("inflight %d after every entry was answered", n)
	}
}

// TestMergeIntoClearsTheStaleTail: a recycled merged batch keeps the last
// group's operations; a smaller merge into it overwrites the first and
// clears the rest (no stale record stays reachable past its length), and
// one too large for it gets a new array.
func TestMergeIntoClearsTheStaleTail(t *testing.T) {
	group := func(clients ...string) []*store.Batch {
		var bs []*store.Batch
		for _, c := range clients {
			b := &store.Batch{}
			b.Dequeue(c, 1)
			bs = append(bs, b)
		}
		return bs
	}
	b := &store.Batch{}
	mergeInto(b, group("a", "b", "c", "d"))
	array := &b.Ops[:1][0]
	mergeInto(b, group("x", "y"))
	if len(b.Ops) != 2 || b.Ops[0].ClientID != "x" || b.Ops[1].ClientID != "y" {
		t.Fatalf("merged %+v, want x, y", b.Ops)
	}
	if &b.Ops[0] != array {
		t.Error("a merge that fits did not reuse the array")
	}
	for i, op := range b.Ops[2:4] {
		if op != (store.Op{}) {
			t.Errorf("stale operation %d left past the merge: %+v", i+2, op)
		}
	}
	mergeInto(b, group("1", "2", "3", "4", "5", "6"))
	if len(b.Ops) != 6 || b.Ops[5].ClientID != "6" {
		t.Fatalf("merged %+v, want 1..6", b.Ops)
	}
}
