package session

import (
	"slices"
	"testing"

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
	if cap(p.buf) > keepPending {
		t.Fatalf("an empty pends keeps %d entries of room", cap(p.buf))
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
	var entries Entries
	entries.Reserve(5)
	var seqs []uint64
	for range 5 {
		r := f.s.Offer(m, Delivery{QoS: 1, Entries: &entries}, &b)
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
