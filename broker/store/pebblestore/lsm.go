package pebblestore

import (
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// What an operator reads of Pebble's background work: its write stalls
// and the shape of its LSM tree (bollard_store_write_stall*,
// bollard_store_l0_files and the rest of /metrics).

var (
	_ store.StallReporter = (*Store)(nil)
	_ store.LSMReporter   = (*Store)(nil)
)

// WriteStalls implements store.StallReporter: Pebble stopped every commit
// because the memtables waiting for a flush, or the files waiting in L0
// for a compaction, went over their bounds (Options.LargestWrite).
func (s *Store) WriteStalls() store.StallSnapshot { return s.opts.Stalls.Snapshot(time.Now()) }

// LSM implements store.LSMReporter from Pebble's metrics.
func (s *Store) LSM() (store.LSMStats, bool) {
	s.mu.Lock()
	if s.closed || s.poisoned {
		s.mu.Unlock()
		return store.LSMStats{}, false // a panicked Pebble may hold its own locks
	}
	s.ops.Add(1)
	s.mu.Unlock()
	defer s.ops.Done()
	m := s.db.Metrics()
	return store.LSMStats{
		L0Files: m.Levels[0].TablesCount, L0Sublevels: int64(m.Levels[0].Sublevels), L0StopWritesSublevels: l0StopWritesSublevels,
		Memtables: m.MemTable.Count, MemtableBytes: int64(m.MemTable.Size),
		CompactionDebtBytes: int64(m.Compact.EstimatedDebt),
		Flushes:             m.Flush.Count, Compactions: m.Compact.Count,
		FlushesRunning: m.Flush.NumInProgress, CompactionsRunning: m.Compact.NumInProgress,
	}, true
}
