package session

import (
	"strconv"
	"testing"
)

func TestDepthFollowsTheQueue(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 10, MaxBytes: 1 << 20, Policy: DropNewest})
	if err := f.s.Attach(10, func() {}); err != nil {
		t.Fatal(err)
	}
	if d := f.s.Depth(); !d.Online || d.Messages != 0 || d.MaxMessages != 10 || d.MaxBytes != 1<<20 || d.Fill() != 0 {
		t.Fatalf("attached session: %+v fill %v", d, d.Fill())
	}
	f.detach()
	for i := range 4 {
		f.offer(strconv.Itoa(i), 1, false)
	}
	d := f.s.Depth()
	i := f.s.Info()
	if d.Online || d.Messages != 4 || d.Messages != i.QueuedMessages || d.Bytes != i.QueuedBytes || d.Fill() != 0.4 {
		t.Fatalf("4 of 10 queued offline: %+v fill %v (info %+v)", d, d.Fill(), i)
	}
}

func TestDepthFill(t *testing.T) {
	for name, c := range map[string]struct {
		d    Depth
		want float64
	}{
		"no limits":            {Depth{Messages: 5, Bytes: 500}, 0},
		"messages only":        {Depth{Messages: 5, MaxMessages: 10}, 0.5},
		"bytes fuller":         {Depth{Messages: 1, Bytes: 900, MaxMessages: 10, MaxBytes: 1000}, 0.9},
		"messages fuller":      {Depth{Messages: 8, Bytes: 100, MaxMessages: 10, MaxBytes: 1000}, 0.8},
		"over a lowered limit": {Depth{Messages: 30, MaxMessages: 10}, 3},
	} {
		if got := c.d.Fill(); got != c.want {
			t.Errorf("%s: %v, want %v", name, got, c.want)
		}
	}
}
