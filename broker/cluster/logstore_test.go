package cluster

import (
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

func TestLogStore(t *testing.T) {
	dir := t.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := openLogStore(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 0 {
		t.Fatalf("empty log: first %d", f)
	}
	var logs []*raft.Log
	at := time.Unix(0, 1_700_000_000_000_000_123)
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, &raft.Log{Index: i, Term: 1 + i/5, Type: raft.LogCommand, Data: []byte{byte(i)}, Extensions: []byte("x"), AppendedAt: at})
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	var l raft.Log
	if err := s.GetLog(7, &l); err != nil {
		t.Fatal(err)
	}
	if l.Index != 7 || l.Term != 2 || l.Type != raft.LogCommand || l.Data[0] != 7 || string(l.Extensions) != "x" || !l.AppendedAt.Equal(at) {
		t.Fatalf("entry 7 read back as %+v", l)
	}
	if err := s.GetLog(11, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("missing entry: %v", err)
	}
	// A prefix compacted after a snapshot, a suffix overwritten by a leader.
	if err := s.DeleteRange(1, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRange(9, 10); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 5 {
		t.Fatalf("first %d after compaction, want 5", f)
	}
	if last, _ := s.LastIndex(); last != 8 {
		t.Fatalf("last %d after truncation, want 8", last)
	}
	if _, err := s.Get([]byte("CurrentTerm")); err == nil || err.Error() != "not found" {
		t.Fatalf("unset stable key: err = %v, want raft's \"not found\"", err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything survives a reopen, bounds included.
	s, err = openLogStore(dir, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if f, _ := s.FirstIndex(); f != 5 {
		t.Fatalf("reopened: first %d", f)
	}
	if last, _ := s.LastIndex(); last != 8 {
		t.Fatalf("reopened: last %d", last)
	}
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 42 {
		t.Fatalf("reopened: term %d, %v", v, err)
	}
	if err := s.DeleteRange(5, 8); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 0 {
		t.Fatalf("emptied: first %d", f)
	}
}

func TestLogEntryRefusesCorruption(t *testing.T) {
	good := appendEntry(nil, &raft.Log{Index: 1, Term: 3, Type: raft.LogCommand, Data: []byte("data")})
	for i := 0; i < len(good); i++ {
		var l raft.Log
		if err := decodeEntry(good[:i], &l); err == nil {
			t.Errorf("truncated at %d: decoded", i)
		}
	}
	var l raft.Log
	if err := decodeEntry(append(append([]byte(nil), good...), 0), &l); err == nil {
		t.Error("trailing byte: decoded")
	}
}
