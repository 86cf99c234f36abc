package pebblestore

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// With NoWAL (a cluster member's store) a crash loses the entries applied
// since the last flush, and the applied index with them, consistently:
// the Raft log replays them from that index. Sync, Checkpoint and Close
// flush, so what they promise survives the crash.
func TestNoWALCrashKeepsAppliedIndexConsistent(t *testing.T) {
	fs := vfs.NewCrashableMem()
	dir := "/store"
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	open := func() *Store {
		t.Helper()
		s, err := Open(dir, Options{Durability: Interval, NoWAL: true, fs: fs})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	// crash leaves what was synced when it is called (a power loss; a
	// process crash keeps more of the files, but loses the memtables
	// alike).
	crash := func(s *Store) {
		t.Helper()
		crashed := fs.CrashClone(vfs.CrashCloneCfg{})
		_ = s.Close()
		fs = crashed
	}
	s := open()
	if err := s.ApplyReplicated(1, replicaBatch("c", 10, 1)); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyReplicated(2, replicaBatch("c", 11, 2)); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.ApplyReplicated(3, replicaBatch("c", 12, 3)); err != nil {
		t.Fatal(err)
	}
	crash(s)

	s = open()
	if got, n := s.AppliedIndex(), queueLen(t, s, "c"); got != 2 || n != 2 {
		t.Fatalf("after a crash: applied %d with %d entries queued, want 2 and 2 (entry 3 is replayed)", got, n)
	}
	// The replay: entry 3 again, entries up to 2 skipped.
	for i, seq := range []uint64{1, 2, 3} {
		if err := s.ApplyReplicated(uint64(i+1), replicaBatch("c", 10+uint64(i), seq)); err != nil {
			t.Fatal(err)
		}
	}
	if got, n := s.AppliedIndex(), queueLen(t, s, "c"); got != 3 || n != 3 {
		t.Fatalf("after the replay: applied %d, %d entries", got, n)
	}
	// A checkpoint (a Raft snapshot) holds every entry applied, although
	// none was synced: Raft may drop the log up to it.
	if err := s.ApplyReplicated(4, replicaBatch("c", 13, 4)); err != nil {
		t.Fatal(err)
	}
	ckpt := "/ckpt"
	if err := s.Checkpoint(ckpt); err != nil {
		t.Fatal(err)
	}
	crash(s)
	for _, d := range []string{dir, ckpt} {
		c, err := Open(d, Options{Durability: Interval, NoWAL: true, fs: fs})
		if err != nil {
			t.Fatal(err)
		}
		if got, n := c.AppliedIndex(), queueLen(t, c, "c"); got != 4 || n != 4 {
			t.Fatalf("%s after a crash following the checkpoint: applied %d, %d entries; want 4 and 4", filepath.Base(d), got, n)
		}
		if d == dir {
			// A clean close keeps everything without a replay.
			if err := c.ApplyReplicated(5, replicaBatch("c", 14, 5)); err != nil {
				t.Fatal(err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			fs = fs.CrashClone(vfs.CrashCloneCfg{})
			c = open()
			if got := c.AppliedIndex(); got != 5 {
				t.Fatalf("after Close: applied %d, want 5", got)
			}
		}
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// NoWAL gives Commit no durability of its own: only with Interval
// durability, whose writes the caller replays.
func TestNoWALNeedsInterval(t *testing.T) {
	if _, err := Open(t.TempDir(), Options{Durability: Sync, NoWAL: true}); err == nil {
		t.Fatal("NoWAL with Sync durability opened")
	}
}
