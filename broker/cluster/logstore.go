package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"

	"github.com/hashicorp/raft"
	raftwal "github.com/hashicorp/raft-wal"
	walmetrics "github.com/hashicorp/raft-wal/metrics"
	"github.com/hashicorp/raft-wal/segment"
	"golang.org/x/sys/unix"
)

// logStore is Raft's log and stable store: hashicorp/raft-wal in
// raft/wal. An append is written and fsynced by the goroutine that
// appends (Raft's leader loop, or a follower's append handler) into a
// preallocated, zero-filled segment file (segfs.go), with no hand-off to another writer; a
// segment is sealed with an index once full, and truncating a prefix after
// a snapshot deletes whole segments. Terms and votes live in the WAL's
// metadata database.
//
// The log is monotonic (raft.MonotonicLogStore): after installing a
// snapshot Raft empties it rather than leave a gap.
//
// Members of earlier builds kept the log in a Pebble database in raft/log;
// openLogStore converts that once (see migrateLegacyLog).
type logStore struct {
	*raftwal.WAL
	lock    *os.File   // raft/LOCK, held while open: one process per log
	fs      *segmentFS // its segments' files (segfs.go)
	metrics *walmetrics.AtomicCollector
	recent  recentLogs // the entries appended last, for GetLog
}

var (
	_ raft.LogStore          = (*logStore)(nil)
	_ raft.StableStore       = (*logStore)(nil)
	_ raft.MonotonicLogStore = (*logStore)(nil)
)

// walSegmentSize is the size of each preallocated segment file. Raft keeps
// TrailingLogs entries after a snapshot, so a member's log holds a few
// segments; 16 MiB keeps that small on small volumes and seals a segment
// (a background file creation) every few seconds at full ingest.
const walSegmentSize = 16 << 20

// errLogLocked says another process has the member's log open.
var errLogLocked = errors.New("the raft log is in use by another process")

// hasLog reports whether raftDir holds a Raft log of either format.
func hasLog(raftDir string) bool {
	return exists(filepath.Join(raftDir, "wal")) || isDir(filepath.Join(raftDir, legacyLogDir))
}

// isDir reports whether path is a directory.
func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// legacyGuard is what raft/log holds once the log is in raft/wal. Builds
// before the WAL keep the log in a Pebble database there and know nothing
// of raft/wal: started on this member's directory (a rollback), one would
// find no log and no vote, start from term 0 and could vote a second time
// in a term it already voted in, which breaks Raft's safety. A regular
// file in the database's place makes such a build fail at once instead
// ("raft/log: not a directory"), and says why to whoever looks.
const legacyGuard = `This member's Raft log is in raft/wal (hashicorp/raft-wal).
Bollard builds before it kept the log here, in a Pebble database, and
cannot read raft/wal: this file makes them stop at start instead of
starting this member with an empty log and no record of its votes.
To run such a build, empty this member's data directory first and add it
to the cluster again (docs/operations.md, "Downgrading").
`

// writeLegacyGuard puts legacyGuard in raft/log if nothing is there.
func writeLegacyGuard(raftDir string) error {
	path := filepath.Join(raftDir, legacyLogDir)
	fi, err := os.Lstat(path)
	switch {
	case err == nil && fi.Mode().IsRegular():
		return nil
	case err == nil:
		return fmt.Errorf("cluster: %s is neither the old raft log nor its guard file", path)
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cluster: %w", err)
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("cluster: write the raft log guard: %w", err)
	}
	_, err = f.WriteString(legacyGuard)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("cluster: write the raft log guard: %w", err)
	}
	return syncDir(raftDir)
}

// openLogStore opens (or creates) the Raft log of the member whose Raft
// state is in raftDir. It fails at once, with errLogLocked, if another
// process has it open.
func openLogStore(raftDir string, log *slog.Logger) (*logStore, error) {
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(raftDir, "LOCK"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cluster: open the raft log's lock: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		_ = lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("cluster: %s: %w", raftDir, errLogLocked)
		}
		return nil, fmt.Errorf("cluster: lock the raft log: %w", err)
	}
	s, err := openLocked(raftDir, log)
	if err != nil {
		_ = lock.Close() // releases the lock
		return nil, err
	}
	s.lock = lock
	return s, nil
}

func openLocked(raftDir string, log *slog.Logger) (*logStore, error) {
	dir := filepath.Join(raftDir, "wal")
	if err := migrateLegacyLog(raftDir, log); err != nil {
		return nil, err
	}
	if err := writeLegacyGuard(raftDir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return openWAL(dir, log)
}

// openWAL opens the WAL in dir; the caller holds the lock.
func openWAL(dir string, log *slog.Logger) (*logStore, error) {
	return openWALSized(dir, walSegmentSize, log)
}

// openWALSized is openWAL with segments of segmentSize bytes (tests use
// small ones).
func openWALSized(dir string, segmentSize int, log *slog.Logger) (*logStore, error) {
	sfs, err := newSegmentFS(dir, int64(segmentSize), log)
	if err != nil {
		return nil, err
	}
	if err := finishRotation(dir, sfs, segmentSize, log); err != nil {
		sfs.Close()
		return nil, err
	}
	col := walmetrics.NewAtomicCollector(raftwal.MetricDefinitions)
	w, err := raftwal.Open(dir, raftwal.WithLogger(hclogFor(log).Named("wal")), raftwal.WithSegmentSize(segmentSize),
		raftwal.WithSegmentFiler(segment.NewFiler(dir, sfs)), raftwal.WithMetricsCollector(col))
	if err != nil {
		sfs.Close()
		return nil, fmt.Errorf("cluster: open the raft log in %s: %w", dir, err)
	}
	return &logStore{WAL: w, fs: sfs, metrics: col}, nil
}

// stats counts the log's writes since it was opened.
func (s *logStore) stats() ClusterLog {
	c := s.metrics.Summary().Counters
	return ClusterLog{
		Appends: c["log_appends"], WrittenEntries: c["log_entries_written"], WrittenBytes: c["log_entry_bytes_written"],
		SegmentsFromSpare: uint64(s.fs.spares.Load()), SegmentsFilledInPlace: uint64(s.fs.filled.Load()),
		TruncatedHead: c["head_truncations"], TruncatedTail: c["tail_truncations"],
	}
}

// GetLog reads the entry at index. Entries before FirstIndex are gone as
// far as Raft is concerned, even while their segment is still on disk (the
// WAL deletes a segment once all of it is truncated, and would serve them
// until then): a follower that needs them gets a snapshot.
func (s *logStore) GetLog(index uint64, l *raft.Log) error {
	if first, err := s.FirstIndex(); err != nil {
		return err
	} else if index < first {
		return raft.ErrLogNotFound
	}
	if s.recent.get(index, l) {
		return nil
	}
	return s.WAL.GetLog(index, l)
}

// StoreLog appends one entry (through StoreLogs: the embedded WAL's own
// StoreLog would miss recent).
func (s *logStore) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

// StoreLogs appends entries and keeps them in recent once they are in the
// log.
func (s *logStore) StoreLogs(logs []*raft.Log) error {
	if err := s.WAL.StoreLogs(logs); err != nil {
		s.recent.reset() // what the WAL holds now is not known here
		return err
	}
	s.recent.add(logs)
	return nil
}

// DeleteRange removes entries (a prefix after a snapshot, or a suffix a
// new leader overwrites), forgetting recent ones first.
func (s *logStore) DeleteRange(lo, hi uint64) error {
	s.recent.reset()
	return s.WAL.DeleteRange(lo, hi)
}

// recentLogs keeps the entries appended last, up to maxRecentLogBytes of
// their data, for GetLog. A leader reads each entry back right after
// appending it, once per follower, to send it (hashicorp/raft's
// replication reads the log store), and raft-wal reads it from its
// segment file into new memory every time: about 2% of a leader's CPU at
// full ingest, and on the path of every replicated commit. raft.LogCache
// does the same by count; entries here range from a few bytes to several
// MiB, so this one is bounded by bytes. The cached entries are Raft's own
// (their data is never modified once appended), shared, not copied.
type recentLogs struct {
	mu    sync.RWMutex
	logs  []*raft.Log // consecutive indexes, oldest first
	bytes int
}

// maxRecentLogBytes bounds the data of the entries recentLogs keeps.
const maxRecentLogBytes = 8 << 20

// get fills l with the entry at index when it is kept.
func (r *recentLogs) get(index uint64, l *raft.Log) bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.logs) == 0 || index < r.logs[0].Index {
		return false
	}
	i := index - r.logs[0].Index
	if i >= uint64(len(r.logs)) {
		return false
	}
	*l = *r.logs[i]
	return true
}

// add keeps logs, just appended, dropping the oldest entries beyond the
// bound. An entry that does not follow the last one kept starts anew; one
// larger than the bound is not kept (nor are those before it).
func (r *recentLogs) add(logs []*raft.Log) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, l := range logs {
		n := len(l.Data) + len(l.Extensions)
		if n > maxRecentLogBytes || (len(r.logs) > 0 && l.Index != r.logs[len(r.logs)-1].Index+1) {
			r.resetLocked()
		}
		if n > maxRecentLogBytes {
			continue
		}
		r.logs = append(r.logs, l)
		r.bytes += n
		for r.bytes > maxRecentLogBytes {
			r.bytes -= len(r.logs[0].Data) + len(r.logs[0].Extensions)
			r.logs[0] = nil
			r.logs = r.logs[1:]
		}
	}
}

func (r *recentLogs) reset() {
	r.mu.Lock()
	r.resetLocked()
	r.mu.Unlock()
}

func (r *recentLogs) resetLocked() {
	clear(r.logs)
	r.logs, r.bytes = r.logs[:0], 0
}

// Close closes the log and releases its lock.
func (s *logStore) Close() error {
	err := s.WAL.Close()
	if s.fs != nil {
		s.fs.Close()
	}
	if s.lock != nil {
		if cerr := s.lock.Close(); err == nil {
			err = cerr
		}
		s.lock = nil
	}
	return err
}
