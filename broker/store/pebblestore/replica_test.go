package pebblestore

import (
	"context"
	"errors"
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
