package session

import (
	"slices"
	"testing"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
)

// TestPendsAgainstSlice drives pends and a plain slice with the same
// pushes and removals (front, middle, last) and compares them.
func TestPendsAgainstSlice(t *testing.T) {
	var p pends
	var want []pend
	seq := uint64(0)
	check := func(step string) {
		t.Helper()
		if !slices.Equal(p.items(), want) || p.len() != len(want) {
			t.Fatalf("%s: pends %v, want %v", step, p.items(), want)
		}
	}
	for round := range 200 {
		for range round%7 + 1 {
			seq++
			p.push(pend{seq: seq, size: int64(seq)})
			want = append(want, pend{seq: seq, size: int64(seq)})
			check("push")
		}
		for k := range round%5 + 1 {
			if len(want) == 0 {
				break
			}
			i := 0
			if k%3 == 2 {
				i = len(want) / 2
			}
			if got := p.find(want[i].seq); got != i {
				t.Fatalf("find(%d) = %d, want %d", want[i].seq, got, i)
			}
			if e := p.remove(i); e != want[i] {
				t.Fatalf("remove(%d) = %v, want %v", i, e, want[i])
			}
			want = slices.Delete(want, i, i+1)
			check("remove")
		}
		if p.find(seq+1) != -1 || p.find(0) != -1 {
			t.Fatal("find of an absent seq")
		}
	}
	for len(want) > 0 {
		p.remove(0)
		want = want[1:]
	}
	check("drained")
	if p.a != nil && cap(p.a.buf) > keepPending {
		t.Fatalf("an empty pends keeps %d entries of room", cap(p.a.buf))
	}
	var fresh pends
	if fresh.len() != 0 || fresh.items() != nil || fresh.find(1) != -1 {
		t.Fatal("a zero pends is not empty")
	}
	fresh.set(nil)
	fresh.empty()
	if fresh.a != nil {
		t.Fatal("a zero pends allocated without an entry")
	}
}

// TestSettleOutOfOrder settles uncommitted entries of an offline session
// out of order, failing some: the counters and the watermark follow.
func TestSettleOutOfOrder(t *testing.T) {
	f := newFixture(t, 60, Limits{})
	f.s.Detach()
	var b store.Batch
	m := &store.Message{ID: 1, Topic: "t", QoS: 1, Payload: []byte("xy")}
	b.PutMessage(m)
	var entries router.Entries
	entries.Reserve(5)
	var seqs []uint64
	for range 5 {
		r := f.s.Offer(m, router.Delivery{QoS: 1, Entries: &entries}, &b)
		seqs = append(seqs, r.Settle)
	}
	f.s.Settle(seqs[2], false)
	f.s.Settle(seqs[0], true)
	if wm := f.s.q.watermark(); wm != seqs[1]-1 {
		t.Fatalf("watermark %d, want %d", wm, seqs[1]-1)
	}
	f.s.Settle(seqs[4], true)
	f.s.Settle(seqs[1], true)
	f.s.Settle(seqs[3], false)
	if wm := f.s.q.watermark(); wm != seqs[4] {
		t.Fatalf("watermark %d, want %d", wm, seqs[4])
	}
	if f.s.q.msgs != 3 || f.s.q.bytes != 3*m.Size() {
		t.Fatalf("queue %d msgs %d bytes, want 3 and %d", f.s.q.msgs, f.s.q.bytes, 3*m.Size())
	}
	for i, op := range b.Ops[1:] {
		if op.Kind != store.OpEnqueue || op.Entry.Seq != seqs[i] {
			t.Fatalf("op %d: %v seq %d", i, op.Kind, op.Entry.Seq)
		}
	}
}

// TestSettleAllMatchesSettle settles the same uncommitted entries of two
// offline sessions with SettleAll and with one Settle each: a prefix of
// the pending entries (the fast path), then entries out of order, failed
// and committed.
func TestSettleAllMatchesSettle(t *testing.T) {
	for _, ok := range []bool{true, false} {
		a, b := newFixture(t, 60, Limits{}), newFixture(t, 60, Limits{})
		a.s.Detach()
		b.s.Detach()
		m := &store.Message{ID: 1, Topic: "t", QoS: 1, Payload: []byte("xy")}
		var seqs []uint64
		for range 8 {
			var ba, bb store.Batch
			ra := a.s.Offer(m, router.Delivery{QoS: 1}, &ba)
			rb := b.s.Offer(m, router.Delivery{QoS: 1}, &bb)
			if ra.Settle != rb.Settle {
				t.Fatalf("seqs %d and %d", ra.Settle, rb.Settle)
			}
			seqs = append(seqs, ra.Settle)
		}
		for _, group := range [][]uint64{
			{seqs[0], seqs[1], seqs[3]}, // prefix, then a gap
			{seqs[5], seqs[2]},          // not the front
			{seqs[4], seqs[6], seqs[7], seqs[7] + 1},
		} {
			a.s.SettleAll(group, ok)
			for _, seq := range group {
				b.s.Settle(seq, ok)
			}
			qa, qb := &a.s.q, &b.s.q
			if qa.msgs != qb.msgs || qa.bytes != qb.bytes || qa.watermark() != qb.watermark() ||
				!slices.Equal(qa.pending.items(), qb.pending.items()) {
				t.Fatalf("ok=%v after %v: SettleAll left %d msgs %d bytes wm %d %v, Settle %d msgs %d bytes wm %d %v",
					ok, group, qa.msgs, qa.bytes, qa.watermark(), qa.pending.items(),
					qb.msgs, qb.bytes, qb.watermark(), qb.pending.items())
			}
		}
		if n := a.s.q.pending.len(); n != 0 {
			t.Fatalf("ok=%v: %d entries still pending", ok, n)
		}
	}
}

// TestEntriesReset: after Reset the next fan-out's entries come from the
// same array, hold only their own values, and an array above the keep
// bound is dropped.
func TestEntriesReset(t *testing.T) {
	f := newFixture(t, 60, Limits{})
	f.s.Detach()
	var entries router.Entries
	offer := func(id uint64, subIDs []uint32) *store.Batch {
		b := &store.Batch{}
		m := &store.Message{ID: id, Topic: "t", QoS: 1, Payload: []byte("p")}
		b.PutMessage(m)
		entries.Reserve(3)
		for range 3 {
			f.s.Offer(m, router.Delivery{QoS: 1, SubscriptionIDs: subIDs, Entries: &entries}, b)
		}
		return b
	}
	b1 := offer(1, []uint32{7})
	first := b1.Ops[1].Entry
	entries.Reset(3)
	b2 := offer(2, nil)
	if b2.Ops[1].Entry != first {
		t.Fatal("the array was not reused after Reset")
	}
	for i, op := range b2.Ops[1:] {
		if e := op.Entry; e.MessageID != 2 || len(e.SubscriptionIDs) != 0 || e.Seq != uint64(4+i) {
			t.Fatalf("entry %d after reuse = %+v", i, *e)
		}
	}
	entries.Reset(2) // room for 3: above the bound, dropped
	if b3 := offer(3, nil); b3.Ops[1].Entry == first {
		t.Fatal("an array above the keep bound was reused")
	}
}
