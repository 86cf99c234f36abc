package engine

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
)

func TestUnixNanosClamps(t *testing.T) {
	base := time.Unix(1_800_000_000, 5)
	tests := map[string]struct {
		in   time.Time
		want int64
	}{
		"ordinary":         {base, base.UnixNano()},
		"zero is far past": {time.Time{}, math.MinInt64},
		"beyond 2262":      {base.Add(time.Duration(math.MaxUint32)*time.Second).AddDate(200, 0, 0), math.MaxInt64},
		"max expiry":       {base.Add(time.Duration(math.MaxUint32) * time.Second), base.Add(time.Duration(math.MaxUint32) * time.Second).UnixNano()},
	}
	for name, tc := range tests {
		if got := unixNanos(tc.in); got != tc.want {
			t.Errorf("%s: unixNanos(%v) = %d, want %d", name, tc.in, got, tc.want)
		}
	}
}

// TestSweeperLoadOrders: deadlines queued during recovery (beginLoad)
// come out of the heap in time order once endLoad built it, and a
// session's earlier deadline replaces a later one.
func TestSweeperLoadOrders(t *testing.T) {
	w := newSweeper(nil)
	rng := rand.New(rand.NewPCG(5, 6))
	base := time.Unix(1_800_000_000, 0)
	w.beginLoad()
	entries := make([]*sessionEntry, 500)
	for i := range entries {
		rec := store.Session{ClientID: fmt.Sprintf("c%03d", i), ExpiryInterval: uint32(1 + rng.IntN(100000)), DisconnectedAt: base}
		entries[i] = &sessionEntry{sess: session.New(rec, nil, nil)}
		w.schedule(entries[i])
	}
	// The same deadline again is not queued twice; an earlier one is
	// queued too and becomes the entry's due time.
	w.schedule(entries[7])
	old := entries[7].due
	entries[7].sess.SetExpiry(0, &store.Batch{})
	w.schedule(entries[7])
	w.endLoad()
	if len(w.h) != 501 || entries[7].due >= old {
		t.Fatalf("%d deadlines, due %d (was %d); want 501 and an earlier due", len(w.h), entries[7].due, old)
	}
	prev := int64(math.MinInt64)
	stale := 0
	for w.h.Len() > 0 {
		d := heap.Pop(&w.h).(deadline)
		if d.at < prev {
			t.Fatalf("deadline %d after %d", d.at, prev)
		}
		switch {
		case d.e.due == 0:
			t.Fatalf("%s: deadline %d of an entry with none queued", d.e.sess.ClientID(), d.at)
		case d.e.due != d.at:
			stale++
		}
		prev = d.at
	}
	if stale != 1 {
		t.Fatalf("%d stale deadlines, want 1 (the later one of c007)", stale)
	}
}
