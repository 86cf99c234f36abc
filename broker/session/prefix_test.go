package session

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// sentPrefix checks what Attach relies on after a crash: in the store,
// no Sent or Released entry stands behind a Queued one.
func (f *fixture) sentPrefix() error {
	f.t.Helper()
	queued := uint64(0)
	var bad error
	err := f.st.ReadQueue("c", 0, 0, func(e store.QueueEntry, _ *store.Message) bool {
		switch {
		case e.State == store.Queued && queued == 0:
			queued = e.Seq
		case e.State != store.Queued && queued != 0:
			bad = fmt.Errorf("entry %d is %v behind the Queued entry %d: Attach would not send it again", e.Seq, e.State, queued)
			return false
		}
		return true
	})
	if err != nil {
		f.t.Fatal(err)
	}
	return bad
}

// commitOnly commits b without reporting anything to the session.
func (f *fixture) commitOnly(b *store.Batch) {
	f.t.Helper()
	if b.Len() == 0 {
		return
	}
	if err := f.st.Commit(context.Background(), b); err != nil {
		f.t.Fatal(err)
	}
}

// A QoS 1 delivery acknowledged before its Sent mark was written leaves
// the queue by the Dequeue in the read loop's batch of acknowledgements.
// A QoS 2 mark written meanwhile by the writer could be submitted first:
// a crash between the two left the acknowledged entry Queued in front of
// the Sent one, which the next Attach did not send again (seen as a lost
// QoS 2 message after a cluster leader was killed). The QoS 2 delivery
// waits until the acknowledgements are submitted.
func TestQoS2MarkWaitsForSubmittedAcks(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	wakes := 0
	if err := f.s.Attach(10, func() { wakes++ }); err != nil {
		t.Fatal(err)
	}
	f.offer("a", 1, false)
	out := f.next(10)
	if got := payloads(out); !equal(got, []string{"a"}) {
		t.Fatalf("sent %v", got)
	}
	f.offer("b", 2, false)
	var ack store.Batch // the read loop's, not submitted yet
	if err := f.s.Puback(out[0].PacketID, &ack); err != nil {
		t.Fatal(err)
	}
	var wb store.Batch
	if out, _ := f.s.NextBatch(nil, 10, nil, &wb); len(out) != 0 || wb.Len() != 0 {
		t.Fatalf("QoS 2 delivered with its mark (%+v) before the acknowledgement's Dequeue was submitted: %v", wb.Ops, payloads(out))
	}
	f.commitOnly(&ack)
	before := wakes
	f.s.AcksSubmitted()
	if wakes == before {
		t.Fatal("AcksSubmitted did not wake the held QoS 2 delivery")
	}
	out, wait := f.s.NextBatch(nil, 10, nil, &wb)
	if got := payloads(out); !equal(got, []string{"b"}) || !wait || wb.Len() != 1 {
		t.Fatalf("after AcksSubmitted: %v wait=%v ops %+v", got, wait, wb.Ops)
	}
	f.commitOnly(&wb)
	if err := f.sentPrefix(); err != nil {
		t.Fatal(err)
	}
}

// Entries commit in Seq order, but a later entry's commit may be reported
// first. While an entry delivered early is uncommitted, no later mark is
// written: a QoS 2 delivery waits for it, and the marks a detach writes
// stop before it.
func TestMarksWaitForEarlyEntries(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	wakes := 0
	if err := f.s.Attach(10, func() { wakes++ }); err != nil {
		t.Fatal(err)
	}
	ba, ra := f.offerUncommitted("a", 1)
	f.s.Deliverable(ra.Settle)
	if got := payloads(f.next(10)); !equal(got, []string{"a"}) {
		t.Fatalf("early delivery: %v", got)
	}
	bb, rb := f.offerUncommitted("b", 2)
	f.commitOnly(ba)
	f.commitOnly(bb)
	f.s.Settle(rb.Settle, true) // reported before a's
	var wb store.Batch
	if out, _ := f.s.NextBatch(nil, 10, nil, &wb); len(out) != 0 || wb.Len() != 0 {
		t.Fatalf("QoS 2 delivered (ops %+v) while the early entry before it was uncommitted: %v", wb.Ops, payloads(out))
	}
	before := wakes
	f.s.Settle(ra.Settle, true)
	if wakes == before {
		t.Fatal("the early entry's commit did not wake the held QoS 2 delivery")
	}
	out, wait := f.s.NextBatch(nil, 10, nil, &wb)
	if got := payloads(out); !equal(got, []string{"b"}) || !wait || wb.Len() != 2 {
		t.Fatalf("after the commit: %v wait=%v ops %+v (want b's mark and a's)", got, wait, wb.Ops)
	}
	f.commitOnly(&wb)
	if err := f.sentPrefix(); err != nil {
		t.Fatal(err)
	}

	// A detach: c delivered early and uncommitted, d (QoS 1) after it
	// committed first. d's mark is not written.
	bc, rc := f.offerUncommitted("c", 1)
	f.s.Deliverable(rc.Settle)
	bd, rd := f.offerUncommitted("d", 1)
	f.s.Deliverable(rd.Settle)
	if got := payloads(f.next(10)); !equal(got, []string{"c", "d"}) {
		t.Fatalf("early deliveries: %v", got)
	}
	f.commitOnly(bc)
	f.commitOnly(bd)
	f.s.Settle(rd.Settle, true)
	var marks store.Batch
	f.s.DetachMarks(&marks)
	for _, op := range marks.Ops {
		if op.Kind == store.OpUpdateEntry {
			t.Fatalf("detach marked an entry behind an uncommitted one: %+v", marks.Ops)
		}
	}
	f.commitOnly(&marks)
	f.s.Settle(rc.Settle, true)
	if err := f.sentPrefix(); err != nil {
		t.Fatal(err)
	}
}

// A random schedule of publishes, deliveries, acknowledgements gathered
// into a batch the read loop submits later, and early deliveries whose
// commits are reported out of order: after every commit (a crash may
// come at any of them) the store keeps its Sent entries in front, and in
// the end a reconnect delivers every entry left.
func TestSentPrefixRandomSchedule(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomSchedule(t, seed) })
	}
}

func randomSchedule(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	f := newFixture(t, 3600, Limits{MaxMessages: 1000, MaxBytes: 1 << 24})
	if err := f.s.Attach(4, func() {}); err != nil {
		t.Fatal(err)
	}
	type held struct {
		b   *store.Batch
		seq uint64
	}
	var (
		unsettled []held // committed, commit not reported yet
		ack       = &store.Batch{}
		inflight  []Outgoing
		n         int
	)
	check := func(what string) {
		t.Helper()
		if err := f.sentPrefix(); err != nil {
			t.Fatalf("seed %d, after %s: %v", seed, what, err)
		}
	}
	for step := range 200 {
		switch k := rng.IntN(10); {
		case k < 3: // publish
			n++
			qos := byte(1 + rng.IntN(2))
			b, r := f.offerUncommitted(fmt.Sprint(n), qos)
			if r.Early {
				f.s.Deliverable(r.Settle)
			}
			f.commitOnly(b) // submission order is commit order
			check("an Enqueue")
			unsettled = append(unsettled, held{b, r.Settle})
		case k < 4 && len(unsettled) > 0: // one commit reported, any of them
			i := rng.IntN(len(unsettled))
			f.s.Settle(unsettled[i].seq, true)
			unsettled = append(unsettled[:i], unsettled[i+1:]...)
		case k < 6: // the writer
			var wb store.Batch
			out, _ := f.s.NextBatch(nil, 10, nil, &wb)
			f.commitOnly(&wb)
			check(fmt.Sprintf("step %d: the writer's batch %+v", step, wb.Ops))
			for _, o := range out {
				if !o.Pubrel {
					inflight = append(inflight, o)
				}
			}
		case k < 8 && len(inflight) > 0: // an acknowledgement
			i := rng.IntN(len(inflight))
			o := inflight[i]
			inflight = append(inflight[:i], inflight[i+1:]...)
			if o.QoS == 1 {
				_ = f.s.Puback(o.PacketID, ack)
				continue
			}
			var rb store.Batch
			if rel, err := f.s.Pubrec(o.PacketID, false, &rb); err != nil || !rel {
				t.Fatalf("PUBREC: %v %v", rel, err)
			}
			f.commitOnly(&rb)
			check("a PUBREC")
			_ = f.s.Pubcomp(o.PacketID, ack)
		default: // the read loop submits its acknowledgements
			f.commitOnly(ack)
			check("the acknowledgements")
			f.s.AcksSubmitted()
			ack = &store.Batch{}
		}
	}
	f.commitOnly(ack)
	f.s.AcksSubmitted()
	for _, h := range unsettled {
		f.s.Settle(h.seq, true)
	}
	// The connection ends; the next one gets every entry still queued,
	// whichever state the store holds it in.
	var marks store.Batch
	f.s.DetachMarks(&marks)
	f.commitOnly(&marks)
	check("the detach")
	want := f.s.Depth().Messages
	if err := f.s.Attach(1000, func() {}); err != nil {
		t.Fatal(err)
	}
	var wb store.Batch
	out, _ := f.s.NextBatch(nil, 1000, nil, &wb)
	if int64(len(out)) != want {
		t.Fatalf("seed %d: %d entries queued, the reconnect sent %d", seed, want, len(out))
	}
}
