package pebblestore

import (
	"strings"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
)

// walFS passes every operation on the write-ahead log files to inj. (The
// FS of errorfs does not wrap files that Pebble recycles with
// ReuseForWrite, and Pebble recycles WAL files.)
type walFS struct {
	vfs.FS
	inj errorfs.Injector
}

func (fs walFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs walFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs walFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return errorfs.WrapFile(f, fs.inj), nil
}

func isSync(op errorfs.Op) bool {
	return op.Kind == errorfs.OpFileSync || op.Kind == errorfs.OpFileSyncData || op.Kind == errorfs.OpFileSyncTo
}

// walSyncCounter counts fsyncs of WAL files.
func walSyncCounter(n *atomic.Int64) vfs.FS {
	return walFS{FS: vfs.Default, inj: errorfs.InjectorFunc(func(op errorfs.Op) error {
		if isSync(op) {
			n.Add(1)
		}
		return nil
	})}
}
