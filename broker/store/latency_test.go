package store

import (
	"sync"
	"testing"
	"time"
)

func TestLatenciesBuckets(t *testing.T) {
	var l Latencies
	for _, d := range []time.Duration{
		50 * time.Microsecond,  // first bucket
		100 * time.Microsecond, // on a bound: counted at or below it
		3 * time.Millisecond,   // 5 ms bucket
		3 * time.Second,        // above the last bound: Count and Sum only
	} {
		l.Observe(d)
	}
	s := l.Snapshot()
	want := map[float64]uint64{0.0001: 2, 0.0025: 2, 0.005: 3, 2.5: 3}
	for i, b := range LatencyBounds {
		if w, ok := want[b]; ok && s.Cumulative[i] != w {
			t.Errorf("bucket %v: %d, want %d", b, s.Cumulative[i], w)
		}
		if i > 0 && s.Cumulative[i] < s.Cumulative[i-1] {
			t.Errorf("bucket %v below the one before: %v", b, s.Cumulative)
		}
	}
	if s.Count != 4 || s.Sum != 3*time.Second+3150*time.Microsecond {
		t.Errorf("count %d, sum %s", s.Count, s.Sum)
	}
}

// TestLatenciesSnapshotWhileObserving: a snapshot taken while others
// observe never has a bucket above Count (Prometheus would refuse it).
func TestLatenciesSnapshotWhileObserving(t *testing.T) {
	var l Latencies
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					l.Observe(time.Millisecond)
				}
			}
		}()
	}
	for range 2000 {
		s := l.Snapshot()
		if last := s.Cumulative[len(s.Cumulative)-1]; last > s.Count {
			t.Fatalf("last bucket %d above count %d", last, s.Count)
		}
	}
	close(stop)
	wg.Wait()
}
