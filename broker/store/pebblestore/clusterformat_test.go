package pebblestore

import (
	"path/filepath"
	"testing"
)

// The cluster format is recorded with the applied index, survives a
// reopen and a checkpoint, never goes down, and a replayed entry changes
// nothing.
func TestApplyReplicatedFormat(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if f := s.ClusterFormat(); f != 1 {
		t.Fatalf("new store: format %d, want 1", f)
	}
	if err := s.ApplyReplicated(1, replicaBatch("c", 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyReplicatedFormat(2, 7, 2); err != nil {
		t.Fatal(err)
	}
	if f, a, term := s.ClusterFormat(), s.AppliedIndex(), s.AppliedTerm(); f != 2 || a != 2 || term != 7 {
		t.Fatalf("format %d applied %d term %d, want 2, 2, 7", f, a, term)
	}
	if err := s.ApplyReplicatedFormat(2, 7, 5); err != nil { // a replay: skipped
		t.Fatal(err)
	}
	if err := s.ApplyReplicatedFormat(3, 7, 1); err != nil { // never down
		t.Fatal(err)
	}
	if f, a := s.ClusterFormat(), s.AppliedIndex(); f != 2 || a != 3 {
		t.Fatalf("after a replay and a lower format: format %d applied %d, want 2, 3", f, a)
	}
	ckpt := filepath.Join(t.TempDir(), "ckpt")
	if err := s.Checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, ckpt} {
		r, err := Open(d, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if f, a := r.ClusterFormat(), r.AppliedIndex(); f != 2 || a != 3 {
			t.Errorf("%s reopened: format %d applied %d, want 2, 3", d, f, a)
		}
		if n := queueLen(t, r, "c"); n != 1 {
			t.Errorf("%s reopened: %d entries, want 1", d, n)
		}
		_ = r.Close()
	}
}
