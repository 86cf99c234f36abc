package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

func replicaBatch(clientID string, msgID uint64, seq uint64) *store.Batch {
	b := &store.Batch{}
	if seq == 1 {
		b.PutSession(&store.Session{ClientID: clientID, ProtocolVersion: 5, ExpiryInterval: 60})
	}
	b.PutMessage(&store.Message{ID: msgID, Topic: "t", Payload: []byte("p"), QoS: 1})
	b.Enqueue(clientID, &store.QueueEntry{Seq: seq, MessageID: msgID, QoS: 1})
	return b
}

func queueLen(t *testing.T, s *Store, clientID string) int {
	t.Helper()
	n := 0
	if err := s.ReadQueue(clientID, 0, 0, func(store.QueueEntry, *store.Message) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestApplyReplicated(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := s.AppliedIndex(); got != 0 {
		t.Fatalf("new store: applied %d", got)
	}
	if err := s.ApplyReplicated(3, replicaBatch("c", 10, 1)); err != nil {
		t.Fatal(err)
	}
	// A replay of entry 3 (or anything older) is skipped, not applied twice.
	if err := s.ApplyReplicated(3, replicaBatch("c", 10, 1)); err != nil {
		t.Fatalf("replay: %v", err)
	}
	if err := s.ApplyReplicated(2, replicaBatch("c", 11, 2)); err != nil {
		t.Fatalf("older entry: %v", err)
	}
	if n := queueLen(t, s, "c"); n != 1 {
		t.Fatalf("queue holds %d entries after a replay, want 1", n)
	}
	// An entry the store refuses moves the applied index and changes nothing.
	bad := &store.Batch{}
	bad.Enqueue("nobody", &store.QueueEntry{Seq: 1, MessageID: 12})
	if err := s.ApplyReplicated(4, bad); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused entry: err = %v, want ErrNotFound", err)
	}
	if got := s.AppliedIndex(); got != 4 {
		t.Fatalf("applied %d after a refused entry, want 4", got)
	}
	if err := s.ApplyReplicated(5, replicaBatch("c", 20, 2)); err != nil {
		t.Fatal(err)
	}
	// The leader's message IDs move this member's counter: were it to lead,
	// it would not reuse them.
	if id := s.NextMessageID(); id <= 20 {
		t.Fatalf("NextMessageID %d after applying message 20", id)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := s.Checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyReplicated(6, replicaBatch("c", 21, 3)); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.AppliedIndex(); got != 6 {
		t.Fatalf("reopened: applied %d, want 6", got)
	}
	if n := queueLen(t, s, "c"); n != 3 {
		t.Fatalf("reopened: %d entries, want 3", n)
	}

	c, err := Open(ckpt, Options{})
	if err != nil {
		t.Fatalf("open checkpoint: %v", err)
	}
	defer c.Close()
	if got := c.AppliedIndex(); got != 5 {
		t.Fatalf("checkpoint: applied %d, want 5", got)
	}
	if n := queueLen(t, c, "c"); n != 2 {
		t.Fatalf("checkpoint: %d entries, want 2", n)
	}
}

// queueSeqs lists the Seqs of clientID's queue.
func queueSeqs(t *testing.T, s *Store, clientID string) []uint64 {
	t.Helper()
	var seqs []uint64
	if err := s.ReadQueue(clientID, 0, 0, func(e store.QueueEntry, _ *store.Message) bool { seqs = append(seqs, e.Seq); return true }); err != nil {
		t.Fatal(err)
	}
	return seqs
}

// TestApplyReplicatedBatch: entries applied together give every entry the
// outcome it gets applied alone, and leave the same state: a refused entry
// is refused alone, an entry applied before is skipped, and an entry that
// refers to a message only an earlier entry put is refused even though a
// merged batch would accept it.
func TestApplyReplicatedBatch(t *testing.T) {
	// orphan enqueues message 10, which entry 1 put: refused alone.
	orphan := &store.Batch{}
	orphan.Enqueue("c", &store.QueueEntry{Seq: 2, MessageID: 10, QoS: 1})
	bad := &store.Batch{}
	bad.Enqueue("nobody", &store.QueueEntry{Seq: 1, MessageID: 99})
	// after puts message 11 and enqueues it, then message 10 of entry 1:
	// refused alone, though its first entry names the message it put.
	after := replicaBatch("c", 11, 2)
	after.Enqueue("c", &store.QueueEntry{Seq: 3, MessageID: 10, QoS: 1})
	cases := []struct {
		name    string
		indexes []uint64
		batches []*store.Batch
	}{
		{"all accepted", []uint64{1, 2, 3}, []*store.Batch{replicaBatch("c", 10, 1), replicaBatch("c", 11, 2), replicaBatch("c", 12, 3)}},
		{"one refused", []uint64{1, 2, 3}, []*store.Batch{replicaBatch("c", 10, 1), bad, replicaBatch("c", 12, 2)}},
		{"message of an earlier entry", []uint64{1, 2, 3}, []*store.Batch{replicaBatch("c", 10, 1), orphan, replicaBatch("c", 12, 3)}},
		{"message of an earlier entry after its own", []uint64{1, 2, 3}, []*store.Batch{replicaBatch("c", 10, 1), after, replicaBatch("c", 12, 4)}},
		{"empty entry", []uint64{4, 5}, []*store.Batch{{}, replicaBatch("c", 10, 1)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			one, err := Open(t.TempDir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer one.Close()
			together, err := Open(t.TempDir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer together.Close()
			want := make([]error, len(tc.batches))
			for i, b := range tc.batches {
				want[i] = one.ApplyReplicated(tc.indexes[i], b)
			}
			got := together.ApplyReplicatedBatch(tc.indexes, tc.batches)
			for i := range want {
				if (want[i] == nil) != (got[i] == nil) || (want[i] != nil && !errors.Is(got[i], store.ErrNotFound) && !errors.Is(got[i], store.ErrInvalid)) {
					t.Errorf("entry %d: together %v, alone %v", tc.indexes[i], got[i], want[i])
				}
			}
			if a, b := together.AppliedIndex(), one.AppliedIndex(); a != b {
				t.Errorf("applied index: together %d, alone %d", a, b)
			}
			if a, b := queueSeqs(t, together, "c"), queueSeqs(t, one, "c"); fmt.Sprint(a) != fmt.Sprint(b) {
				t.Errorf("queue: together %v, alone %v", a, b)
			}
			if a, b := together.NextMessageID(), one.NextMessageID(); a != b {
				t.Errorf("next message ID: together %d, alone %d", a, b)
			}
		})
	}
}

func TestApplyReplicatedBatchReplayAndOrder(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if errs := s.ApplyReplicatedBatch([]uint64{1, 2}, []*store.Batch{replicaBatch("c", 10, 1), replicaBatch("c", 11, 2)}); errs[0] != nil || errs[1] != nil {
		t.Fatal(errs)
	}
	// A replay overlapping what was applied applies only the new entries.
	errs := s.ApplyReplicatedBatch([]uint64{1, 2, 3}, []*store.Batch{replicaBatch("c", 10, 1), replicaBatch("c", 11, 2), replicaBatch("c", 12, 3)})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replay, entry %d: %v", i+1, err)
		}
	}
	if got := queueSeqs(t, s, "c"); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("queue after the replay: %v", got)
	}
	// Indexes out of order are a failure of the caller, not a refusal.
	errs = s.ApplyReplicatedBatch([]uint64{5, 4}, []*store.Batch{replicaBatch("c", 13, 4), replicaBatch("c", 14, 5)})
	if !errors.Is(errs[0], ErrApply) || !errors.Is(errs[1], ErrApply) {
		t.Fatalf("out of order: %v", errs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The applied index and the data were written together.
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := s.AppliedIndex(); got != 3 {
		t.Fatalf("reopened: applied %d, want 3", got)
	}
	if got := queueSeqs(t, s, "c"); fmt.Sprint(got) != "[1 2 3]" {
		t.Fatalf("reopened: queue %v", got)
	}
}

// The store records the Raft term of the last entry it applied, keeps it
// across a restart, and reads a store written before terms were recorded
// (the index alone) as term 0: unknown.
func TestAppliedTermRecorded(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyReplicatedTerm(3, 2, &store.Batch{}); err != nil {
		t.Fatal(err)
	}
	if s.AppliedIndex() != 3 || s.AppliedTerm() != 2 {
		t.Fatalf("after one entry: index %d term %d", s.AppliedIndex(), s.AppliedTerm())
	}
	errs := s.ApplyReplicatedBatchTerms([]uint64{4, 5}, []uint64{2, 7}, []*store.Batch{{}, {}})
	if errors.Join(errs...) != nil || s.AppliedIndex() != 5 || s.AppliedTerm() != 7 {
		t.Fatalf("after a batch: %v, index %d term %d", errs, s.AppliedIndex(), s.AppliedTerm())
	}
	if errs := s.ApplyReplicatedBatchTerms([]uint64{6}, []uint64{1, 2}, []*store.Batch{{}}); !errors.Is(errs[0], ErrApply) {
		t.Fatalf("terms not matching the batches: %v", errs)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.AppliedIndex() != 5 || s.AppliedTerm() != 7 {
		t.Fatalf("after a restart: index %d term %d", s.AppliedIndex(), s.AppliedTerm())
	}
	// An entry applied without a term (an adoption's) records none.
	if err := s.ApplyReplicated(8, &store.Batch{}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.AppliedIndex() != 8 || s.AppliedTerm() != 0 {
		t.Fatalf("index alone: index %d term %d, want 8 and 0", s.AppliedIndex(), s.AppliedTerm())
	}
}
