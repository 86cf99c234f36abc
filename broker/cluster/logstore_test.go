package cluster

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/hashicorp/raft"
)

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestLogStore(t *testing.T) {
	dir := t.TempDir()
	s, err := openLogStore(dir, quietLog)
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
	// A compacted entry is gone, though its segment is still on disk.
	if err := s.GetLog(4, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("compacted entry: %v", err)
	}
	if last, _ := s.LastIndex(); last != 8 {
		t.Fatalf("last %d after truncation, want 8", last)
	}
	// Raft reads an unset term as 0 (raft.HasExistingState, its start).
	if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 0 {
		t.Fatalf("unset stable key: %d, %v", v, err)
	}
	if err := s.SetUint64([]byte("CurrentTerm"), 42); err != nil {
		t.Fatal(err)
	}
	// One process per log: a second open (the recovery tool on a running
	// member's directory) is refused at once.
	if _, err := openLogStore(dir, quietLog); !errors.Is(err, errLogLocked) {
		t.Fatalf("second open: %v, want errLogLocked", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Everything survives a reopen, bounds included.
	s, err = openLogStore(dir, quietLog)
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
	// After a snapshot install Raft empties the log and appends after the
	// snapshot's index.
	if err := s.DeleteRange(5, 8); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 0 {
		t.Fatalf("emptied: first %d", f)
	}
	if err := s.StoreLogs([]*raft.Log{{Index: 1000, Term: 9, Type: raft.LogCommand, Data: []byte("after")}}); err != nil {
		t.Fatal(err)
	}
	if f, _ := s.FirstIndex(); f != 1000 {
		t.Fatalf("after a restore: first %d, want 1000", f)
	}
	if !s.IsMonotonic() {
		t.Fatal("the log must tell Raft it is monotonic (empty it after a snapshot install)")
	}
}

// writeLegacyLog writes a log in the Pebble format of earlier builds.
func writeLegacyLog(t *testing.T, raftDir string, first, last uint64, size int, stable map[string][]byte) {
	t.Helper()
	db, err := pebble.Open(filepath.Join(raftDir, legacyLogDir), &pebble.Options{Logger: pebbleLogger{quietLog}})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	for i := first; i <= last; i++ {
		data := make([]byte, size)
		binary.BigEndian.PutUint64(data, i)
		k := binary.BigEndian.AppendUint64([]byte{logPrefix}, i)
		if err := b.Set(k, appendEntry(nil, &raft.Log{Index: i, Term: 3, Type: raft.LogCommand, Data: data, AppendedAt: time.Unix(0, int64(i))}), nil); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range stable {
		if err := b.Set(append([]byte{stablePrefix}, k...), v, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestLegacyLogConverted(t *testing.T) {
	for _, leftover := range []string{"", "migrating", "converted"} {
		t.Run("leftover="+leftover, func(t *testing.T) {
			raftDir := t.TempDir()
			// 300 entries of 64 KiB: more than two conversion chunks.
			const first, last, size = 5, 304, 64 << 10
			writeLegacyLog(t, raftDir, first, last, size, map[string][]byte{
				"CurrentTerm":  binary.BigEndian.AppendUint64(nil, 7),
				"LastVoteTerm": binary.BigEndian.AppendUint64(nil, 6),
				"LastVoteCand": []byte("member-2"), // 8 bytes, and not a number
			})
			switch leftover {
			case "migrating": // a crash during step 1 left a partial WAL
				if err := os.MkdirAll(filepath.Join(raftDir, "wal.migrating"), 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(raftDir, "wal.migrating", "junk"), []byte("x"), 0o600); err != nil {
					t.Fatal(err)
				}
			case "converted": // a crash after step 2: the WAL is the log
				s, err := openLogStore(raftDir, quietLog)
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				// The old log comes back as a crash before its removal left it,
				// with an entry the WAL must not take (it is not the log). (The
				// guard file comes after the old log's removal, so the crash
				// left none; and Pebble cannot open a database where it is.)
				guard := filepath.Join(raftDir, legacyLogDir)
				if _, err := pebble.Open(guard, &pebble.Options{Logger: pebbleLogger{quietLog}}); err == nil {
					t.Fatal("Pebble opened a database in place of the guard file")
				}
				if err := os.Remove(guard); err != nil {
					t.Fatal(err)
				}
				writeLegacyLog(t, raftDir, first, last+1, 8, nil)
			}
			s, err := openLogStore(raftDir, quietLog)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if isDir(filepath.Join(raftDir, legacyLogDir)) || exists(filepath.Join(raftDir, "wal.migrating")) {
				t.Fatal("the old log or a partial conversion is left")
			}
			if b, err := os.ReadFile(filepath.Join(raftDir, legacyLogDir)); err != nil || string(b) != legacyGuard {
				t.Fatalf("raft/log after the conversion: %q, %v; want the guard", b, err)
			}
			if f, _ := s.FirstIndex(); f != first {
				t.Fatalf("first %d, want %d", f, first)
			}
			if l, _ := s.LastIndex(); l != last {
				t.Fatalf("last %d, want %d", l, last)
			}
			for i := uint64(first); i <= last; i++ {
				var l raft.Log
				if err := s.GetLog(i, &l); err != nil {
					t.Fatal(err)
				}
				if l.Term != 3 || len(l.Data) != size || binary.BigEndian.Uint64(l.Data) != i || !l.AppendedAt.Equal(time.Unix(0, int64(i))) {
					t.Fatalf("entry %d converted as term %d, %d bytes, at %v", i, l.Term, len(l.Data), l.AppendedAt)
				}
			}
			if v, err := s.GetUint64([]byte("CurrentTerm")); err != nil || v != 7 {
				t.Fatalf("current term %d, %v; want 7", v, err)
			}
			if v, err := s.GetUint64([]byte("LastVoteTerm")); err != nil || v != 6 {
				t.Fatalf("last vote term %d, %v; want 6", v, err)
			}
			if v, err := s.Get([]byte("LastVoteCand")); err != nil || string(v) != "member-2" {
				t.Fatalf("last vote %q, %v", v, err)
			}
			// Raft goes on appending where the old log ended.
			if err := s.StoreLogs([]*raft.Log{{Index: last + 1, Term: 8, Type: raft.LogCommand}}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestLegacyLogWithAGapIsRefused(t *testing.T) {
	raftDir := t.TempDir()
	writeLegacyLog(t, raftDir, 1, 3, 8, nil)
	writeLegacyLog(t, raftDir, 5, 6, 8, nil)
	if _, err := openLogStore(raftDir, quietLog); err == nil {
		t.Fatal("a log with a gap was converted")
	}
	// Nothing was lost: the old log is still there to be looked at.
	if !exists(filepath.Join(raftDir, legacyLogDir)) || exists(filepath.Join(raftDir, "wal")) {
		t.Fatal("a refused conversion changed the member's state")
	}
}

// appendEntry encodes a log entry as earlier builds did:
// version(1) term(uvarint) type(1) appendedAt(varint ns, 0 = zero) data ext.
func appendEntry(dst []byte, l *raft.Log) []byte {
	dst = append(dst, entryVersion)
	dst = binary.AppendUvarint(dst, l.Term)
	dst = append(dst, byte(l.Type))
	var at int64
	if !l.AppendedAt.IsZero() {
		at = l.AppendedAt.UnixNano()
	}
	dst = binary.AppendVarint(dst, at)
	dst = binary.AppendUvarint(dst, uint64(len(l.Data)))
	dst = append(dst, l.Data...)
	dst = binary.AppendUvarint(dst, uint64(len(l.Extensions)))
	return append(dst, l.Extensions...)
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

// TestRecentLogs: entries just appended are read back from memory, the
// same as from the log; beyond the byte bound, from the log; an
// overwritten suffix is never served from memory.
func TestRecentLogs(t *testing.T) {
	s, err := openLogStore(t.TempDir(), quietLog)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	reads := func() uint64 { return s.metrics.Summary().Counters["log_entries_read"] }
	entry := func(i uint64, term uint64, size int) *raft.Log {
		d := make([]byte, size)
		binary.BigEndian.PutUint64(d, i*1000+term)
		return &raft.Log{Index: i, Term: term, Type: raft.LogCommand, Data: d}
	}
	// Ten entries of 1 MiB: the last eight fit in maxRecentLogBytes.
	var logs []*raft.Log
	for i := uint64(1); i <= 10; i++ {
		logs = append(logs, entry(i, 1, 1<<20))
	}
	if err := s.StoreLogs(logs); err != nil {
		t.Fatal(err)
	}
	check := func(i, term uint64, fromLog bool) {
		t.Helper()
		before := reads()
		var l raft.Log
		if err := s.GetLog(i, &l); err != nil {
			t.Fatal(err)
		}
		if l.Index != i || l.Term != term || binary.BigEndian.Uint64(l.Data) != i*1000+term {
			t.Fatalf("entry %d read back as index %d term %d data %d", i, l.Index, l.Term, binary.BigEndian.Uint64(l.Data))
		}
		if got := reads() > before; got != fromLog {
			t.Fatalf("entry %d: read from the log %v, want %v", i, got, fromLog)
		}
	}
	check(1, 1, true)
	check(2, 1, true)
	for i := uint64(3); i <= 10; i++ {
		check(i, 1, false)
	}
	// A new leader overwrites entries 8-10 with its own term.
	if err := s.DeleteRange(8, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.StoreLogs([]*raft.Log{entry(8, 2, 64), entry(9, 2, 64)}); err != nil {
		t.Fatal(err)
	}
	check(7, 1, true) // forgotten with the deletion
	check(8, 2, false)
	check(9, 2, false)
	var l raft.Log
	if err := s.GetLog(10, &l); !errors.Is(err, raft.ErrLogNotFound) {
		t.Fatalf("deleted entry 10: %v", err)
	}
	// One entry over the bound is not kept, and starts the run anew.
	if err := s.StoreLog(entry(10, 2, maxRecentLogBytes+1)); err != nil {
		t.Fatal(err)
	}
	check(9, 2, true)
	check(10, 2, true)
	if err := s.StoreLog(entry(11, 2, 10)); err != nil {
		t.Fatal(err)
	}
	check(11, 2, false)
}
