package store

import (
	"sync/atomic"
	"time"
)

// Stalls counts the write stalls of a store: the times it stopped every
// commit because its background work (flushing memtables, compacting)
// fell behind, and how long commits waited. A stall holds every
// publisher's acknowledgement in sync mode, so an operator watches it
// beside the fsync latency. The zero value is ready; it is safe for
// concurrent use. A store that reopens keeps counting in the same Stalls
// when it is handed the same one.
type Stalls struct {
	count atomic.Int64
	nanos atomic.Int64 // of stalls that ended
	began atomic.Int64 // UnixNano of the running stall's start; 0: none
}

// Begin records the start of a stall (a second Begin before End is one
// stall).
func (s *Stalls) Begin(now time.Time) {
	if s.began.CompareAndSwap(0, now.UnixNano()) {
		s.count.Add(1)
	}
}

// End records the end of the running stall, if any.
func (s *Stalls) End(now time.Time) {
	if b := s.began.Swap(0); b != 0 {
		s.nanos.Add(max(now.UnixNano()-b, 0))
	}
}

// Snapshot returns the number of stalls begun and the time spent in them
// up to now, the running one included.
func (s *Stalls) Snapshot(now time.Time) StallSnapshot {
	d := s.nanos.Load()
	if b := s.began.Load(); b != 0 {
		d += max(now.UnixNano()-b, 0)
	}
	return StallSnapshot{Count: s.count.Load(), Total: time.Duration(d)}
}

// StallSnapshot is what Stalls counted.
type StallSnapshot struct {
	Count int64
	Total time.Duration
}

// StallReporter is implemented by stores that can stop writes while their
// background work catches up.
type StallReporter interface {
	// WriteStalls reports the write stalls since the store was opened
	// (since its Stalls was made, for one that reopens).
	WriteStalls() StallSnapshot
}
