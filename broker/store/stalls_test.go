package store

import (
	"testing"
	"time"
)

func TestStalls(t *testing.T) {
	var s Stalls
	t0 := time.Unix(1000, 0)
	if got := s.Snapshot(t0); got != (StallSnapshot{}) {
		t.Fatalf("zero value: %+v", got)
	}
	s.End(t0) // no stall running: nothing
	s.Begin(t0)
	s.Begin(t0.Add(time.Second)) // the same stall
	if got := s.Snapshot(t0.Add(2 * time.Second)); got != (StallSnapshot{Count: 1, Total: 2 * time.Second}) {
		t.Fatalf("running stall: %+v", got)
	}
	s.End(t0.Add(3 * time.Second))
	s.Begin(t0.Add(10 * time.Second))
	s.End(t0.Add(10*time.Second + 500*time.Millisecond))
	if got := s.Snapshot(t0.Add(time.Hour)); got != (StallSnapshot{Count: 2, Total: 3500 * time.Millisecond}) {
		t.Fatalf("two ended stalls: %+v", got)
	}
}
