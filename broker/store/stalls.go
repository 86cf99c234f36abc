package store

import (
	"sync"
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
	mu    sync.Mutex // stalls are rare: a lock keeps a snapshot whole
	count int64
	total time.Duration // of stalls that ended
	began time.Time     // the running stall's start; zero: none
}

// Begin records the start of a stall (a second Begin before End is one
// stall).
func (s *Stalls) Begin(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.began.IsZero() {
		s.began = now
		s.count++
	}
}

// End records the end of the running stall, if any.
func (s *Stalls) End(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.began.IsZero() {
		s.total += max(now.Sub(s.began), 0)
		s.began = time.Time{}
	}
}

// Snapshot returns the number of stalls begun and the time spent in them
// up to now, the running one included: never less than an earlier
// snapshot's (the counters of /metrics).
func (s *Stalls) Snapshot(now time.Time) StallSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.total
	if !s.began.IsZero() {
		d += max(now.Sub(s.began), 0)
	}
	return StallSnapshot{Count: s.count, Total: d}
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
