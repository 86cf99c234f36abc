package router

import (
	"slices"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// callSub records the SettleAll calls it gets.
type callSub struct {
	fakeSub
	calls [][]uint64
}

func (c *callSub) SettleAll(seqs []uint64, ok bool) {
	c.calls = append(c.calls, slices.Clone(seqs))
	c.fakeSub.SettleAll(seqs, ok)
}

// TestSettlementGroupsPerSubscriber settles fan-outs whose subscribers
// come in different orders and subsets, twice with one Settlement: each
// subscriber gets one call with its Seqs in order, and the fan-outs'
// retained changes wait for their own Settle.
func TestSettlementGroupsPerSubscriber(t *testing.T) {
	subs := []*callSub{{}, {}, {}}
	f := func(seqs ...int) *Fanout {
		out := &Fanout{}
		for i, seq := range seqs {
			if seq != 0 {
				out.settles = append(out.settles, settle{s: subs[i], seq: uint64(seq)})
			}
		}
		slices.Reverse(out.settles[:min(2, len(out.settles))]) // another order
		return out
	}
	var st Settlement
	for round, ok := range []bool{true, false} {
		for _, s := range subs {
			s.calls = nil
		}
		base := 10 * round
		fs := []*Fanout{f(base+1, base+1, 0), f(base+2, 0, base+1), f(base+3, base+2, base+2)}
		st.Settle(fs, ok)
		want := [][]uint64{{1, 2, 3}, {1, 2}, {1, 2}}
		for i, s := range subs {
			w := make([]uint64, len(want[i]))
			for k, seq := range want[i] {
				w[k] = seq + uint64(base)
			}
			if len(s.calls) != 1 || !slices.Equal(s.calls[0], w) {
				t.Fatalf("round %d: subscriber %d got %v, want one call with %v", round, i, s.calls, w)
			}
			for _, seq := range w {
				if got, done := s.settled[seq]; !done || got != ok {
					t.Fatalf("round %d: subscriber %d seq %d settled %v, %v", round, i, seq, got, done)
				}
			}
		}
		for _, fo := range fs {
			if len(fo.settles) != 0 {
				t.Fatal("fan-out keeps its settles")
			}
		}
	}
}

func TestSettlementLeavesRetainedToFanout(t *testing.T) {
	r := New()
	s := &callSub{fakeSub: fakeSub{store: true}}
	mustSub(t, r, "s", s, store.Subscription{Filter: "r", QoS: 1})
	var b store.Batch
	fo := r.Route(&store.Message{ID: 1, Topic: "r", QoS: 1, Retain: true, Payload: []byte("v")}, false, &b)
	var st Settlement
	st.Settle([]*Fanout{fo}, true)
	if len(s.calls) != 1 || r.RetainedCount() != 0 {
		t.Fatalf("calls %v, retained %d", s.calls, r.RetainedCount())
	}
	fo.Settle(true)
	if len(s.calls) != 1 || len(s.settled) != 1 || r.RetainedCount() != 1 {
		t.Fatalf("after Fanout.Settle: calls %v settled %v retained %d", s.calls, s.settled, r.RetainedCount())
	}
}
