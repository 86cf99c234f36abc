package cluster

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	"github.com/hashicorp/raft-wal/metadb"
)

// TestSegmentFS runs a WAL with small segments on segmentFS: segments
// come from prepared spares (or are filled in place when none is ready
// yet), are full-size and zero beyond what was written, everything reads
// back after a reopen, and leftovers of a crash are cleaned up.
func TestSegmentFS(t *testing.T) {
	const segSize = 256 << 10
	dir := t.TempDir()
	open := func() (*logStore, *segmentFS) {
		t.Helper()
		s, err := openWALSized(dir, segSize, quietLog)
		if err != nil {
			t.Fatal(err)
		}
		return s, s.fs
	}
	waitReady := func(sfs *segmentFS) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			sfs.mu.Lock()
			ready := sfs.ready
			sfs.mu.Unlock()
			if ready {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("no spare segment prepared")
			}
			time.Sleep(time.Millisecond)
		}
	}
	w, sfs := open()
	// settle waits for a rotation the last append started (raft-wal
	// rotates in the background; DeleteRange waits for it, and deletes
	// nothing here), then for the spare that rotation asked for.
	settle := func(w *logStore, sfs *segmentFS) {
		t.Helper()
		if err := w.DeleteRange(0, 0); err != nil {
			t.Fatal(err)
		}
		waitReady(sfs)
	}
	payload := bytes.Repeat([]byte("m"), 4<<10)
	next := uint64(1)
	appendN := func(w *logStore, n int) {
		t.Helper()
		for range n {
			if err := w.StoreLogs([]*raft.Log{{Index: next, Term: 1, Type: raft.LogCommand, Data: payload}}); err != nil {
				t.Fatal(err)
			}
			next++
		}
	}
	// Fill several segments, each time after the spare is ready, so that
	// every rotation takes a prepared spare.
	for range 4 {
		settle(w, sfs)
		appendN(w, 80) // 320 KiB: more than a segment
	}
	if n := sfs.fsyncs.Snapshot().Count; n < 320 {
		t.Fatalf("%d syncs timed for 320 appends", n)
	}
	if sfs.spares.Load() < 3 {
		t.Fatalf("segments from spares: %d, filled in place: %d; want >= 3 from spares", sfs.spares.Load(), sfs.filled.Load())
	}
	settle(w, sfs)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sfs.Close()

	names, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var segs int
	for _, e := range names {
		fi, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(e.Name(), ".wal") || e.Name() == spareReady {
			segs++
			if fi.Size() < segSize { // a sealed segment's index may run past its size
				t.Errorf("%s: size %d, want >= %d", e.Name(), fi.Size(), segSize)
			}
		}
	}
	if segs < 5 {
		t.Fatalf("%d segment files and spares, want >= 5", segs)
	}
	spare, err := os.ReadFile(filepath.Join(dir, spareReady))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(spare, make([]byte, segSize)) {
		t.Fatal("the spare segment is not all zeros")
	}

	// A crash while filling a spare leaves spare.filling: removed at open.
	// A spare of another size (the segment size changed) is removed too.
	if err := os.WriteFile(filepath.Join(dir, spareFilling), []byte("partial"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filepath.Join(dir, spareReady), segSize/2); err != nil {
		t.Fatal(err)
	}
	w, sfs = open()
	waitReady(sfs) // a new spare: the partial one was removed, or filled over
	if _, err := os.Stat(filepath.Join(dir, spareFilling)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("spare.filling after open: %v", err)
	}
	if fi, err := os.Stat(filepath.Join(dir, spareReady)); err != nil || fi.Size() != segSize {
		t.Fatalf("spare after open: %v %v", fi, err)
	}
	// Everything written reads back, and appends go on in the tail.
	if last, _ := w.LastIndex(); last != next-1 {
		t.Fatalf("last index %d after reopen, want %d", last, next-1)
	}
	for i := uint64(1); i < next; i++ {
		var l raft.Log
		if err := w.GetLog(i, &l); err != nil || !bytes.Equal(l.Data, payload) {
			t.Fatalf("entry %d after reopen: %v", i, err)
		}
	}
	appendN(w, 100)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	sfs.Close()

	// Create refuses an existing name, from a spare or in place.
	sfs, err = newSegmentFS(dir, segSize, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	defer sfs.Close()
	waitReady(sfs)
	if err := os.WriteFile(filepath.Join(dir, "taken.wal"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := sfs.Create(dir, "taken.wal", segSize); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over an existing file, from the spare: %v", err)
	}
	if _, err := sfs.Create(dir, "taken.wal", segSize/2); !errors.Is(err, os.ErrExist) {
		t.Fatalf("Create over an existing file, in place: %v", err)
	}
	f, err := sfs.Create(dir, "new.wal", segSize/2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("x"), 10); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "new.wal")); err != nil || fi.Size() != segSize/2 {
		t.Fatalf("a segment filled in place: %v %v", fi, err)
	}
}

// TestFinishRotation: a segment sealed by the append that filled it, with
// the process gone before the WAL's background rotation recorded the seal
// (the state kill -9 at that moment leaves), is a tail that raft-wal
// v0.4.1 refuses every append to. openWAL completes the rotation first.
func TestFinishRotation(t *testing.T) {
	const segSize = 64 << 10
	dir := t.TempDir()
	s, err := openWALSized(dir, segSize, quietLog)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte("r"), 3<<10)
	next := uint64(1)
	store := func(w interface{ StoreLogs([]*raft.Log) error }) error {
		err := w.StoreLogs([]*raft.Log{{Index: next, Term: 3, Type: raft.LogCommand, Data: payload}})
		if err == nil {
			next++
		}
		return err
	}
	countSegments := func() int {
		names, _ := filepath.Glob(filepath.Join(dir, "*.wal"))
		return len(names)
	}
	// Append until the second rotation, then stop: the new tail is empty.
	for rotations, before := 0, countSegments(); rotations < 2; {
		if err := store(s); err != nil {
			t.Fatal(err)
		}
		if err := s.DeleteRange(0, 0); err != nil { // waits for a rotation in progress
			t.Fatal(err)
		}
		if n := countSegments(); n > before {
			rotations, before = rotations+1, n
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// Undo the rotation in the metadata: the sealed segment is the tail
	// again and the empty one after it was never recorded.
	var db metadb.BoltMetaDB
	st, err := db.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := len(st.Segments)
	sealed, empty := st.Segments[n-2], st.Segments[n-1]
	if sealed.SealTime.IsZero() || empty.BaseIndex != next || sealed.MaxIndex != next-1 {
		t.Fatalf("unexpected segments after the rotation: %+v", st.Segments)
	}
	sealed.SealTime, sealed.MaxIndex, sealed.IndexStart = time.Time{}, 0, 0
	st.Segments = append(st.Segments[:n-2], sealed)
	if err := db.CommitState(st); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	// raft-wal alone: the tail refuses appends.
	w, err := raftwal.Open(dir, raftwal.WithSegmentSize(segSize))
	if err != nil {
		t.Fatal(err)
	}
	err = store(w)
	if cerr := w.Close(); cerr != nil {
		t.Fatal(cerr)
	}
	if !errors.Is(err, raftwal.ErrSealed) {
		t.Logf("raft-wal itself now appends after an interrupted rotation (%v); finishRotation may be redundant", err)
	}

	// openWAL finishes the rotation: appends go on and everything reads back.
	for round := range 2 {
		s, err = openWALSized(dir, segSize, quietLog)
		if err != nil {
			t.Fatal(err)
		}
		for range 30 {
			if err := store(s); err != nil {
				t.Fatalf("round %d: append %d: %v", round, next, err)
			}
		}
		for i := uint64(1); i < next; i++ {
			var l raft.Log
			if err := s.GetLog(i, &l); err != nil || l.Index != i || !bytes.Equal(l.Data, payload) {
				t.Fatalf("round %d: entry %d: %v", round, i, err)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
