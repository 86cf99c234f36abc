package engine

import (
	"fmt"
	"testing"
	"time"
)

func TestDropWindow(t *testing.T) {
	var w dropWindow
	t0 := time.Date(2026, 1, 2, 3, 4, 0, 0, time.UTC)
	w.add(t0, DropQueueFull, 5)
	w.add(t0.Add(2*time.Minute), DropQueueFull, 1)
	w.add(t0.Add(2*time.Minute), DropExpired, 2)
	if got := fmt.Sprint(w.sum(t0.Add(3 * time.Minute))); got != "map[expired:2 queue_full:6]" {
		t.Errorf("3 min after the first drops: %s", got)
	}
	// Five minutes on, the first slot has left the window.
	if got := fmt.Sprint(w.sum(t0.Add(DropWindow))); got != "map[expired:2 queue_full:1]" {
		t.Errorf("%s after the first drops: %s", DropWindow, got)
	}
	// A slot reused a window later starts from zero.
	w.add(t0.Add(DropWindow+time.Second), DropTooLarge, 1)
	if got := fmt.Sprint(w.sum(t0.Add(DropWindow + time.Second))); got != "map[expired:2 queue_full:1 too_large:1]" {
		t.Errorf("after reuse: %s", got)
	}
	if got := fmt.Sprint(w.sum(t0.Add(time.Hour))); got != "map[]" {
		t.Errorf("an hour later: %s", got)
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
