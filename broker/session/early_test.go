package session

import (
	"testing"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
)

// offerHeld offers a QoS qos message whose batch the caller commits later
// (as the committer does while a publish waits for its fsync), and
// returns the batch with the result.
func (f *fixture) offerUncommitted(payload string, qos byte) (*store.Batch, router.Result) {
	f.t.Helper()
	f.ids++
	m := &store.Message{ID: f.ids, Topic: "t", Payload: []byte(payload), QoS: qos, PublishedAt: f.clk.now()}
	b := new(store.Batch)
	b.PutMessage(m)
	return b, f.s.Offer(m, router.Delivery{QoS: qos}, b)
}

func (f *fixture) attach() {
	f.t.Helper()
	if err := f.s.Attach(10, func() {}); err != nil {
		f.t.Fatal(err)
	}
}

// An online persistent session's QoS 1 entry goes out once its batch is
// submitted (Deliverable), before the commit; the acknowledgement's
// Dequeue follows the Enqueue, and nothing is sent again afterwards.
func TestEarlyDeliveryBeforeCommit(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	f.attach()
	b, r := f.offerUncommitted("a", 1)
	if !r.Early || r.Settle == 0 {
		t.Fatalf("offer to an online caught-up queue: %+v, want Early with a Settle", r)
	}
	if out := f.next(10); len(out) != 0 {
		t.Fatalf("delivered before its batch was submitted: %v", payloads(out))
	}
	f.s.Deliverable(r.Settle)
	var wb store.Batch
	out, wait := f.s.NextBatch(nil, 10, nil, &wb)
	if got := payloads(out); !equal(got, []string{"a"}) || wait || wb.Len() != 0 || out[0].Dup {
		t.Fatalf("after Deliverable: %v wait=%v ops %+v", out, wait, wb.Ops)
	}
	var ack store.Batch
	if err := f.s.Puback(out[0].PacketID, &ack); err != nil {
		t.Fatal(err)
	}
	if ack.Len() != 1 || ack.Ops[0].Kind != store.OpDequeue {
		t.Fatalf("acknowledged before the commit: %+v, want its Dequeue", ack.Ops)
	}
	f.commit(b) // the Enqueue, then the Dequeue: submission order
	f.commit(&ack)
	f.s.Settle(r.Settle, true)
	if d := f.s.Depth(); d.Messages != 0 {
		t.Fatalf("queue holds %d messages", d.Messages)
	}
	f.detach()
	f.attach()
	if out := f.next(10); len(out) != 0 {
		t.Fatalf("sent again after the acknowledgement: %v", payloads(out))
	}
}

// Only QoS 1 entries that join the head of an online, caught-up queue go
// early, and never ahead of an entry before them: a QoS 2 PUBLISH waits
// for its Sent mark to be durable, an offline session delivers nothing,
// and behind a backlog in the store the entry waits its turn.
func TestEarlyOnlyQoS1AtTheHead(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	f.attach()
	b, r := f.offerUncommitted("two", 2)
	if r.Early {
		t.Fatal("a QoS 2 entry offered early")
	}
	f.s.Deliverable(r.Settle) // ignored
	if out := f.next(10); len(out) != 0 {
		t.Fatalf("QoS 2 delivered before its commit: %v", payloads(out))
	}
	b1, r1 := f.offerUncommitted("one", 1)
	f.s.Deliverable(r1.Settle)
	if out := f.next(10); len(out) != 0 {
		t.Fatalf("delivered ahead of an uncommitted QoS 2 entry: %v", payloads(out))
	}
	f.commit(b)
	f.commit(b1)
	f.s.Settle(r.Settle, true)
	f.s.Settle(r1.Settle, true)
	if got := payloads(f.next(10)); !equal(got, []string{"two", "one"}) {
		t.Fatalf("after the commits: %v", got)
	}
	f.detach()
	if _, r := f.offerUncommitted("offline", 1); r.Early {
		t.Fatal("an offline session's entry offered early")
	}

	g := newFixture(t, 3600, Limits{MaxMessages: 1000, MaxBytes: 1 << 20})
	for i := range 3 * minHead {
		g.offer(string(rune('a'+i%26)), 1, false) // offline: a backlog in the store
	}
	g.attach()
	if _, r := g.offerUncommitted("new", 1); r.Early {
		t.Fatal("an entry behind a backlog in the store offered early")
	}
}

// A connection that ends while an entry it received early is not
// committed: no Sent mark is written for it, the next connection does not
// send it before its commit (the store may not hold it yet), and sends it
// once committed, as a first delivery (QoS 1: at least once).
func TestEarlyEntryAcrossReconnect(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	f.attach()
	b, r := f.offerUncommitted("a", 1)
	f.s.Deliverable(r.Settle)
	if got := payloads(f.next(10)); !equal(got, []string{"a"}) {
		t.Fatalf("early delivery: %v", got)
	}
	var marks store.Batch
	f.s.DetachMarks(&marks)
	if marks.Len() != 0 {
		t.Fatalf("the detach wrote %+v for an uncommitted entry", marks.Ops)
	}
	f.attach()
	if out := f.next(10); len(out) != 0 {
		t.Fatalf("sent again before its commit: %v", payloads(out))
	}
	f.commit(b)
	f.s.Settle(r.Settle, true)
	out := f.next(10)
	if got := payloads(out); !equal(got, []string{"a"}) || out[0].Dup {
		t.Fatalf("after the commit: %+v, want a as a first delivery", out)
	}
	if d := f.s.Depth(); d.Messages != 1 {
		t.Fatalf("queue holds %d messages, want 1", d.Messages)
	}
}

// A Sent mark is not written while the entry's Enqueue is uncommitted,
// even once markDelay passed; it is once the entry committed.
func TestEarlyEntryMarkWaitsForCommit(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	f.attach()
	b, r := f.offerUncommitted("a", 1)
	f.s.Deliverable(r.Settle)
	out := f.next(10)
	f.clk.add(2 * markDelay)
	var wb store.Batch
	f.s.NextBatch(nil, 10, nil, &wb)
	if hasOp(wb, store.OpUpdateEntry, out[0].PacketID) {
		t.Fatal("the Sent mark of an uncommitted entry was written")
	}
	f.commit(b)
	f.s.Settle(r.Settle, true)
	f.s.NextBatch(nil, 10, nil, &wb)
	if !hasOp(wb, store.OpUpdateEntry, out[0].PacketID) {
		t.Fatalf("aged mark after the commit: %+v", wb.Ops)
	}
	f.commit(&wb)
	f.detach()
	f.attach()
	again := f.next(10)
	if len(again) != 1 || !again[0].Dup || again[0].PacketID != out[0].PacketID {
		t.Fatalf("resend after reconnect: %+v, want DUP with packet identifier %d", again, out[0].PacketID)
	}
}

// An entry delivered early whose batch failed is not in the store: its
// acknowledgement writes no Dequeue, no mark is written for it, and the
// queue's counts forget it, acknowledged or not.
func TestEarlyEntryWhoseCommitFailed(t *testing.T) {
	for _, acked := range []bool{true, false} {
		f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
		f.attach()
		_, r := f.offerUncommitted("a", 1)
		f.s.Deliverable(r.Settle)
		out := f.next(10)
		f.s.Settle(r.Settle, false)
		if acked {
			var ack store.Batch
			if err := f.s.Puback(out[0].PacketID, &ack); err != nil {
				t.Fatal(err)
			}
			if ack.Len() != 0 {
				t.Fatalf("acknowledging an entry never stored wrote %+v", ack.Ops)
			}
		}
		var marks store.Batch
		f.s.DetachMarks(&marks)
		if marks.Len() != 0 {
			t.Fatalf("acked=%v: the detach wrote %+v", acked, marks.Ops)
		}
		if d := f.s.Depth(); d.Messages != 0 || d.Bytes != 0 {
			t.Fatalf("acked=%v: queue holds %+v", acked, d)
		}
		f.attach()
		if out := f.next(10); len(out) != 0 {
			t.Fatalf("acked=%v: sent %v", acked, payloads(out))
		}
	}
}
