package pebblestore

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/bollard-io/bollard/broker/store"
)

// TestFsyncLatencyTimesEachWALSync: every fsync of the WAL is counted once,
// with the time the file system took (a WAL whose syncs take 30 ms puts
// every one of them in the buckets above 25 ms), and syncs of other files
// or commits that do not sync add nothing.
func TestFsyncLatencyTimesEachWALSync(t *testing.T) {
	const delay = 30 * time.Millisecond
	var syncs atomic.Int64
	var slow atomic.Bool
	fs := walFS{FS: vfs.Default, inj: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if isSync(op) {
			syncs.Add(1)
			if slow.Load() {
				time.Sleep(delay)
			}
		}
		return nil
	})}
	s := openT(t, t.TempDir(), Options{Durability: Sync, fs: fs})
	defer s.Close()
	before, syncsBefore := s.FsyncLatency(), syncs.Load()
	if before.Count != uint64(syncsBefore) {
		t.Fatalf("after Open: %d fsyncs timed, the WAL had %d", before.Count, syncsBefore)
	}

	noSync := &store.Batch{NoSync: true}
	noSync.PutSession(&store.Session{ClientID: "quiet"})
	mustCommit(t, s, noSync)
	if got := s.FsyncLatency().Count; got != before.Count {
		t.Fatalf("a NoSync commit timed %d fsyncs", got-before.Count)
	}

	slow.Store(true)
	const commits = 4
	for i := range commits {
		b := &store.Batch{}
		b.PutSession(&store.Session{ClientID: fmt.Sprintf("c%d", i)})
		mustCommit(t, s, b)
	}
	slow.Store(false)
	after := s.FsyncLatency()
	n := after.Count - before.Count
	if n < commits || n != uint64(syncs.Load()-syncsBefore) {
		t.Fatalf("%d sequential sync commits: %d fsyncs timed, the WAL had %d", commits, n, syncs.Load()-syncsBefore)
	}
	// Every slow fsync lies above 25 ms: the buckets up to 25 ms did not move.
	i25 := bucketIndex(t, 0.025)
	if after.Cumulative[i25] != before.Cumulative[i25] {
		t.Errorf("%d fsyncs of %s counted at or below 25 ms", after.Cumulative[i25]-before.Cumulative[i25], delay)
	}
	if sum := after.Sum - before.Sum; sum < time.Duration(n)*delay {
		t.Errorf("sum of %d fsyncs of %s each: %s", n, delay, sum)
	}
	if after.Cumulative[len(after.Cumulative)-1] > after.Count {
		t.Errorf("last bucket %d above count %d", after.Cumulative[len(after.Cumulative)-1], after.Count)
	}
}

func bucketIndex(t *testing.T, bound float64) int {
	t.Helper()
	for i, b := range store.LatencyBounds {
		if b == bound {
			return i
		}
	}
	t.Fatalf("no bucket %v", bound)
	return -1
}
