package engine

import (
	"fmt"
	"testing"
	"time"
)

func TestDropWindow(t *testing.T) {
	c := newCounters()
	recent := func(now time.Time) string { _, r := c.dropSnapshot(now); return fmt.Sprint(r) }
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	c.countDrop(t0, DropQueueFull, 5)
	c.countDrop(t0.Add(2*time.Minute), DropQueueFull, 1)
	c.countDrop(t0.Add(2*time.Minute), DropExpired, 2)
	if got := recent(t0.Add(3 * time.Minute)); got != "map[expired:2 queue_full:6]" {
		t.Errorf("3 min after the first drops: %s", got)
	}
	// Five minutes on, the first slot has left the window.
	if got := recent(t0.Add(DropWindow)); got != "map[expired:2 queue_full:1]" {
		t.Errorf("%s after the first drops: %s", DropWindow, got)
	}
	// A slot reused a window later starts from zero, for every reason.
	c.countDrop(t0.Add(DropWindow+time.Second), DropTooLarge, 1)
	if got := recent(t0.Add(DropWindow + time.Second)); got != "map[expired:2 queue_full:1 too_large:1]" {
		t.Errorf("after reuse: %s", got)
	}
	if got := recent(t0.Add(time.Hour)); got != "map[]" {
		t.Errorf("an hour later: %s", got)
	}
	if total, _ := c.dropSnapshot(t0.Add(time.Hour)); fmt.Sprint(total) != "map[expired:2 queue_full:6 too_large:1]" {
		t.Errorf("totals: %v", total)
	}
}

// A log line per reason and second at most, telling of every drop since
// the last one.
func TestDropLogLines(t *testing.T) {
	c := newCounters()
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	type line struct {
		count uint64
		logIt bool
	}
	var got []line
	for _, d := range []struct {
		at     time.Duration
		reason string
	}{{0, DropQueueFull}, {100 * time.Millisecond, DropQueueFull}, {200 * time.Millisecond, DropExpired},
		{900 * time.Millisecond, DropQueueFull}, {time.Second, DropQueueFull}, {1500 * time.Millisecond, DropQueueFull}} {
		n, ok := c.countDrop(t0.Add(d.at), d.reason, 2)
		got = append(got, line{n, ok})
	}
	want := []line{{2, true}, {0, false}, {2, true}, {0, false}, {6, true}, {0, false}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("log lines %v, want %v", got, want)
	}
}

func TestStatsRecentDrops(t *testing.T) {
	s := censusServer(t, 0)
	s.stats.drop(testLogger(t), "c", DropTooLarge, 3)
	st := s.Stats()
	if st.RecentDrops[DropTooLarge] != 3 || st.Drops[DropTooLarge] != 3 {
		t.Errorf("recent %v, total %v", st.RecentDrops, st.Drops)
	}
}
