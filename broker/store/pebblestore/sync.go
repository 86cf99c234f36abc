package pebblestore

import (
	"time"
)

// syncLoop fsyncs the WAL every Options.Interval while writes are pending
// (Interval durability). A failed fsync fails the store, so the next
// Commit reports it.
func (s *Store) syncLoop() {
	defer s.syncDone.Done()
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-s.stopSync:
			return
		case <-t.C:
			if err := s.syncWAL(); err != nil {
				s.mu.Lock()
				s.failLocked(err)
				s.mu.Unlock()
				return
			}
		}
	}
}

// syncWAL fsyncs everything written so far, if anything was. It writes an
// empty WAL record with Sync set: Pebble syncs the log up to it.
func (s *Store) syncWAL() error {
	if !s.dirty.Swap(false) {
		return nil
	}
	if err := s.enter(); err != nil {
		return nil // closing: Close syncs
	}
	defer s.ops.Done()
	b := s.db.NewBatch()
	if err := b.LogData(nil, nil); err != nil {
		return err
	}
	return s.writeSync(b)
}
