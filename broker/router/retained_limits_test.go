package router

import (
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

func retain(r *Router, topic string, payload int) {
	m := &store.Message{Topic: topic, Payload: make([]byte, payload), Retain: true}
	var b store.Batch
	r.Route(m, false, &b).Settle(true)
}

// TestRetainedBytesAndRoom: RetainedBytes follows every set, replacement,
// deletion and expiry drop; RetainRoom refuses new topics at the count cap
// and growth beyond the byte cap, but lets a topic be replaced.
func TestRetainedBytesAndRoom(t *testing.T) {
	r := New()
	size := func(topic string, payload int) int64 {
		return (&store.Message{Topic: topic, Payload: make([]byte, payload), Retain: true}).Size()
	}
	retain(r, "a", 10)
	retain(r, "b", 20)
	if got, want := r.RetainedBytes(), size("a", 10)+size("b", 20); got != want {
		t.Fatalf("RetainedBytes = %d, want %d", got, want)
	}
	retain(r, "a", 30) // replaced
	if got, want := r.RetainedBytes(), size("a", 30)+size("b", 20); got != want {
		t.Fatalf("after replace RetainedBytes = %d, want %d", got, want)
	}
	used := r.RetainedBytes()
	for name, tc := range map[string]struct {
		topic    string
		payload  int
		maxCount int
		maxBytes int64
		want     bool
	}{
		"new topic under caps":     {"c", 1, 3, 0, true},
		"new topic at count cap":   {"c", 1, 2, 0, false},
		"replace at count cap":     {"a", 1, 2, 0, true},
		"new topic over bytes":     {"c", 1, 0, used, false},
		"shrinking over bytes cap": {"a", 5, 0, used - 100, true},
		"growing over bytes cap":   {"a", 31, 0, used, false},
		"growing within bytes cap": {"a", 31, 0, used + 1, true},
		"no limits":                {"z", 1 << 20, 0, 0, true},
	} {
		if got := r.RetainRoom(tc.topic, size(tc.topic, tc.payload), tc.maxCount, tc.maxBytes); got != tc.want {
			t.Errorf("%s: RetainRoom = %v, want %v", name, got, tc.want)
		}
	}
	retain(r, "b", 0) // cleared
	if got, want := r.RetainedBytes(), size("a", 30); got != want {
		t.Fatalf("after clear RetainedBytes = %d, want %d", got, want)
	}
	var b store.Batch
	r.DropRetained(r.Retained("a")[0], &b)
	if r.RetainedBytes() != 0 || r.RetainedCount() != 0 {
		t.Fatalf("after drop: %d bytes, %d messages", r.RetainedBytes(), r.RetainedCount())
	}
}
