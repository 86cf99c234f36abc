package pebblestore

import (
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/bollard-io/bollard/broker/store"
)

var _ store.FsyncReporter = (*Store)(nil)

// FsyncLatency implements store.FsyncReporter: the duration of every fsync
// of Pebble's write-ahead log, timed around the call into the file system
// (timedFS). In sync durability each group of commits waits for one; in
// interval durability the sync loop makes one per interval with writes.
func (s *Store) FsyncLatency() store.LatencySnapshot { return s.fsyncs.Snapshot() }

// timedFS times the syncs of the write-ahead log files (*.log) Pebble
// creates or recycles, into lat. Every other operation and file passes
// through untouched.
type timedFS struct {
	vfs.FS
	lat *store.Latencies
}

func (fs timedFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs timedFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs timedFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return timedFile{File: f, lat: fs.lat}, nil
}

// timedFile is a WAL file whose syncs are timed.
type timedFile struct {
	vfs.File
	lat *store.Latencies
}

func (f timedFile) Sync() error {
	start := time.Now()
	err := f.File.Sync()
	f.lat.Observe(time.Since(start))
	return err
}

func (f timedFile) SyncData() error {
	start := time.Now()
	err := f.File.SyncData()
	f.lat.Observe(time.Since(start))
	return err
}

// SyncTo counts only full syncs: a partial one only queues a write-back.
func (f timedFile) SyncTo(length int64) (bool, error) {
	start := time.Now()
	full, err := f.File.SyncTo(length)
	if full {
		f.lat.Observe(time.Since(start))
	}
	return full, err
}
