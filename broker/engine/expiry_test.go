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
	for i := range 500 {
		rec := store.Session{ClientID: fmt.Sprintf("c%03d", i), ExpiryInterval: uint32(1 + rng.IntN(100000)), DisconnectedAt: base}
		w.schedule(session.New(rec, nil, nil, time.Now, nil))
	}
	w.endLoad()
	if len(w.h) != 500 || len(w.next) != 500 {
		t.Fatalf("%d deadlines, %d sessions; want 500", len(w.h), len(w.next))
	}
	prev := int64(math.MinInt64)
	for w.h.Len() > 0 {
		d := heap.Pop(&w.h).(deadline)
		if d.at < prev {
			t.Fatalf("deadline %d after %d", d.at, prev)
		}
		if w.next[d.id] != d.at {
			t.Fatalf("%s: next %d, popped %d", d.id, w.next[d.id], d.at)
		}
		prev = d.at
	}
}
