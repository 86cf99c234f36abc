package pebblestore

import (
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
				for i := range (memTableSize * 3 / 2) / 4096 {
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
	for _, tc := range []struct {
		largest int64
		want    int
	}{{0, 2}, {memTableSize / 2, 2}, {1 << 20, 2}, {memTableSize/2 + 1, 4}, {memTableSize, 4}, {12<<20 + 100, 7}, {64 << 20, 19}} {
		if got := stopWritesThreshold(tc.largest); got != tc.want {
			t.Errorf("stopWritesThreshold(%d) = %d, want %d", tc.largest, got, tc.want)
		}
	}
}
