package pebblestore

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/bollard-io/bollard/broker/store"
)

// heldFlushFS, once hold is set, holds the creation of every table file
// (a flush or a compaction) until release is closed: a flush that takes
// as long as the test wants.
type heldFlushFS struct {
	vfs.FS
	hold    *atomic.Bool
	release chan struct{}
}

func (fs heldFlushFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	if strings.HasSuffix(name, ".sst") && fs.hold.Load() {
		<-fs.release
	}
	return fs.FS.Create(name, c)
}

// TestLargeWriteDoesNotStallCommits: while a message as large as the
// store's LargestWrite waits for its flush, other commits go on (they
// used to stop until it was flushed: a 12 MiB message held every
// publisher's acknowledgement for seconds, issue 15's follow-up of a CI
// failure); once more than the headroom waits, writes do stop, so what
// the flushes leave behind stays bounded.
func TestLargeWriteDoesNotStallCommits(t *testing.T) {
	const large = 12 << 20
	for _, tc := range []struct {
		largest int64
		stall   bool // the small writes after the large one wait for its flush
	}{{large, false}, {0, true}} {
		t.Run(fmt.Sprintf("LargestWrite=%d", tc.largest), func(t *testing.T) {
			release := make(chan struct{})
			var once sync.Once
			unblock := func() { once.Do(func() { close(release) }) }
			defer unblock()
			var hold atomic.Bool
			s := openT(t, t.TempDir(), Options{Durability: Interval, LargestWrite: tc.largest,
				fs: heldFlushFS{FS: vfs.Default, hold: &hold, release: release}})
			hold.Store(true)
			defer func() { unblock(); _ = s.Close() }()
			ctx := context.Background()
			id := uint64(0)
			retain := func(topic string, n int) error {
				id++
				b := &store.Batch{}
				b.PutRetained(&store.Message{ID: id, Topic: topic, Payload: make([]byte, n), QoS: 1, Retain: true})
				return s.Commit(ctx, b)
			}
			if err := retain("big", large); err != nil {
				t.Fatal(err)
			}
			// Small writes worth one and a half memtables: they fill the
			// memtable the large write left and rotate it once.
			done := make(chan error, 1)
			go func() {
				for i := range (DefaultMemTableSize * 3 / 2) / 4096 {
					if err := retain(fmt.Sprintf("small/%d", i), 4000); err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			wait := 30 * time.Second // the writes themselves take well under a second
			if tc.stall {
				wait = time.Second // long enough to see them stop
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				if tc.stall {
					t.Fatal("the small writes went through while the large one waited for its flush: the test does not hold the flush")
				}
			case <-time.After(wait):
				if !tc.stall {
					t.Fatal("commits stopped while a large write waited for its flush")
				}
				unblock()
				if err := <-done; err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestStopWritesThreshold(t *testing.T) {
	const mt = DefaultMemTableSize
	for _, tc := range []struct {
		largest, memTable int64
		want              int
	}{
		{0, mt, 2}, {mt / 2, mt, 2}, {1 << 20, mt, 2}, {mt/2 + 1, mt, 4}, {mt, mt, 4}, {12<<20 + 100, mt, 7}, {64 << 20, mt, 19},
		// A larger memtable takes a larger write as a usual one.
		{12<<20 + 100, 32 << 20, 2}, {64 << 20, 32 << 20, 5}, {64 << 20, 64 << 20, 4},
	} {
		if got := stopWritesThreshold(tc.largest, tc.memTable); got != tc.want {
			t.Errorf("stopWritesThreshold(%d, %d) = %d, want %d", tc.largest, tc.memTable, got, tc.want)
		}
	}
}

// The store's memtables are the size Options.MemTableSize says: the same
// writes flush fewer of them when they are larger (Pebble starts with
// small memtables and doubles them up to the size). A size out of bounds
// is refused.
func TestMemTableSizeOption(t *testing.T) {
	flushes := map[int64]int64{}
	for _, size := range []int64{0, 32 << 20} {
		s, err := Open(t.TempDir(), Options{Durability: Sync, MemTableSize: size})
		if err != nil {
			t.Fatal(err)
		}
		if o := s.pebbleOptions(); o.MemTableSize != uint64(cmp.Or(size, DefaultMemTableSize)) || o.MemTableStopWritesThreshold != 2 {
			t.Errorf("memtable size %d: Pebble's options %d, %d", size, o.MemTableSize, o.MemTableStopWritesThreshold)
		}
		ctx := context.Background()
		id := uint64(0)
		for range 24 << 20 / (64 * 4096) { // 24 MiB in batches of 64 messages
			b := &store.Batch{}
			for range 64 {
				id++
				b.PutRetained(&store.Message{ID: id, Topic: fmt.Sprintf("t/%d", id), Payload: make([]byte, 4000), QoS: 1, Retain: true})
			}
			if err := s.Commit(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		flushes[size] = s.db.Metrics().Flush.Count
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if flushes[32<<20] >= flushes[0] {
		t.Errorf("flushes of 24 MiB of writes: %d with 32 MiB memtables, %d with the default", flushes[32<<20], flushes[0])
	}
	for _, size := range []int64{1<<20 - 1, 2 << 30, -1} {
		if _, err := Open(t.TempDir(), Options{Durability: Sync, MemTableSize: size}); err == nil || !strings.Contains(err.Error(), "memtable") {
			t.Errorf("memtable size %d: %v", size, err)
		}
	}
}
