package session

import (
	"sync/atomic"
	"testing"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
)

// TestCanReadFiltersOfferAndDelivery: Hooks.CanRead drops a message the
// principal may not read when it is offered, and again when it is about to
// be delivered (the ACL may change while it waits in the queue), for QoS 0
// and for queued QoS 1 messages.
func TestCanReadFiltersOfferAndDelivery(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	var denied atomic.Value
	denied.Store("secret")
	var asked atomic.Int32
	f.s.env.Hooks.CanRead = func(principal, clientID, topic string) bool {
		asked.Add(1)
		if principal != "alice" || clientID != "c" {
			t.Errorf("CanRead(%q, %q, %q): wrong principal or client", principal, clientID, topic)
		}
		return topic != denied.Load().(string)
	}
	f.s.rec.Principal = "alice"
	offer := func(topic string, qos byte) router.Result {
		f.ids++
		return f.offerMessage(&store.Message{ID: f.ids, Topic: topic, Payload: []byte(topic), QoS: qos, PublishedAt: f.clk.now()})
	}
	// Offline: the denied topic is not even queued.
	if r := offer("secret", 1); r.Dropped != DropReadDenied || r.Stored {
		t.Fatalf("offer of a denied topic: %+v", r)
	}
	offer("open", 1)
	offer("later-denied", 1)
	// The ACL changes while the messages wait.
	denied.Store("later-denied")
	if err := f.s.Attach(10, func() {}); err != nil {
		t.Fatal(err)
	}
	offer("later-denied", 0) // online QoS 0: dropped at the offer
	offer("open-qos0", 0)
	got := payloads(f.next(10))
	if !equal(got, []string{"open-qos0", "open"}) {
		t.Fatalf("delivered %v, want [open-qos0 open]", got)
	}
	if f.drops[DropReadDenied] != 3 {
		t.Errorf("read_denied drops = %d, want 3 (%v)", f.drops[DropReadDenied], f.drops)
	}
	if asked.Load() == 0 {
		t.Fatal("CanRead never asked")
	}
	if n := f.s.Info().QueuedMessages; n != 1 { // "open" is inflight until acknowledged
		t.Errorf("queue holds %d entries, want 1 (the denied entry removed)", n)
	}
}
