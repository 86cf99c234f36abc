package session

import (
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
)

// offerExpiring offers a QoS 1 message that expires after ttl, without
// committing it.
func (f *fixture) offerExpiring(payload string, ttl time.Duration) (*store.Batch, router.Result) {
	f.t.Helper()
	f.ids++
	now := f.clk.now()
	m := &store.Message{ID: f.ids, Topic: "t", Payload: []byte(payload), QoS: 1, PublishedAt: now, ExpiresAt: now.Add(ttl)}
	b := new(store.Batch)
	b.PutMessage(m)
	return b, f.s.Offer(m, router.Delivery{QoS: 1}, b)
}

// MQTT 5.0 deletes a subscriber's copy of an expired message only when its
// onward delivery has not started [MQTT-3.3.2-5]. Entries that went out on
// a connection that ended before their Sent state was written (delivered
// early and not committed yet, or marked lazily behind such an entry) are
// Queued in the store as if never sent; once expired, the next connection
// still receives them (expiry 0), and neither the purge of a full queue
// nor the delivery drops them as expired.
func TestStartedEntriesOutliveTheirExpiry(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 3, MaxBytes: 1 << 20})
	f.attach()
	ba, ra := f.offerExpiring("a", time.Second)
	f.s.Deliverable(ra.Settle)
	bb, rb := f.offerExpiring("b", time.Second)
	f.s.Deliverable(rb.Settle)
	if got := payloads(f.next(10)); !equal(got, []string{"a", "b"}) {
		t.Fatalf("early deliveries: %v", got)
	}
	f.detach() // before either commit: no Sent mark may be written
	f.commit(ba)
	f.commit(bb)
	f.s.Settle(ra.Settle, true)
	f.s.Settle(rb.Settle, true)

	// A third message that never went out expires too; the queue is then
	// full, and a fourth makes the purge run.
	bc, rc := f.offerExpiring("c", time.Second)
	f.commit(bc)
	f.s.Settle(rc.Settle, true)
	f.clk.add(2 * time.Second)
	if r := f.offer("d", 1, false); r.Dropped != "" {
		t.Fatalf("d refused: %+v", r)
	}
	if n := f.drops[DropExpired]; n != 1 {
		t.Fatalf("%d expired drops after the purge, want 1 (c, which never went out)", n)
	}

	f.attach()
	out := f.next(10)
	if got := payloads(out); !equal(got, []string{"a", "b", "d"}) {
		t.Fatalf("after the reconnect: %v, want a and b (they went out before) and d", got)
	}
	if n := f.drops[DropExpired]; n != 1 {
		t.Fatalf("%d expired drops, want 1", n)
	}

	// Sent again, and acknowledged this time: nothing is left over.
	var ack store.Batch
	for _, o := range out {
		if err := f.s.Puback(o.PacketID, &ack); err != nil {
			t.Fatal(err)
		}
	}
	f.commit(&ack)
	f.detach()
	f.attach()
	if out := f.next(10); len(out) != 0 {
		t.Fatalf("sent again after the acknowledgements: %v", payloads(out))
	}
	if d := f.s.Depth(); d.Messages != 0 {
		t.Fatalf("queue holds %d messages", d.Messages)
	}
}
