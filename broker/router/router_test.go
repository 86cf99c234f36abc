package router

import (
	"slices"
	"testing"
	"unsafe"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/topic"
)

// fakeSub records what it is offered.
type fakeSub struct {
	online  bool
	got     []Delivery
	settled map[uint64]bool
	store   bool
	early   bool     // Offer returns Early
	freed   []uint64 // the Deliverable calls
}

func (f *fakeSub) Online() bool { return f.online }

func (f *fakeSub) Offer(m *store.Message, d Delivery, b *store.Batch) Result {
	f.got = append(f.got, d)
	if !f.store {
		return Result{}
	}
	b.Enqueue("x", &store.QueueEntry{Seq: uint64(len(f.got)), MessageID: m.ID})
	return Result{Stored: true, Settle: uint64(len(f.got)), Early: f.early}
}

func (f *fakeSub) Deliverable(seq uint64) { f.freed = append(f.freed, seq) }

func (f *fakeSub) Settle(seq uint64, ok bool) {
	if f.settled == nil {
		f.settled = map[uint64]bool{}
	}
	f.settled[seq] = ok
}

func (f *fakeSub) SettleAll(seqs []uint64, ok bool) {
	for _, seq := range seqs {
		f.Settle(seq, ok)
	}
}

func TestRouteMergesOverlappingSubscriptions(t *testing.T) {
	r := New()
	a := &fakeSub{online: true}
	mustSub(t, r, "a", a, store.Subscription{Filter: "x/+", QoS: 0, ID: 1})
	mustSub(t, r, "a", a, store.Subscription{Filter: "x/#", QoS: 2, ID: 2, RetainAsPublished: true})
	var b store.Batch
	f := r.Route(&store.Message{ID: 1, Topic: "x/y", QoS: 1, Retain: false, Payload: []byte("p")}, false, &b)
	if f.Matched != 1 || len(a.got) != 1 {
		t.Fatalf("matched %d, offers %d", f.Matched, len(a.got))
	}
	d := a.got[0]
	if d.QoS != 1 || len(d.SubscriptionIDs) != 2 {
		t.Fatalf("delivery %+v", d)
	}
	if b.Len() != 0 {
		t.Fatalf("batch holds %d ops although nothing was stored", b.Len())
	}
}

func TestRouteNoLocalAndSharedAndStore(t *testing.T) {
	r := New()
	self := &fakeSub{online: true}
	on, off := &fakeSub{online: true, store: true}, &fakeSub{store: true}
	mustSub(t, r, "self", self, store.Subscription{Filter: "t", NoLocal: true})
	mustSub(t, r, "off", off, store.Subscription{Filter: "$share/g/t", QoS: 1})
	mustSub(t, r, "on", on, store.Subscription{Filter: "$share/g/t", QoS: 1})
	for i := range 3 {
		var b store.Batch
		f := r.Route(&store.Message{ID: uint64(i + 1), Publisher: "self", Topic: "t", QoS: 1, Payload: []byte("p")}, false, &b)
		if f.Stored != 1 || b.Ops[0].Kind != store.OpPutMessage {
			t.Fatalf("fanout %+v ops %v", f, b.Ops)
		}
		f.Settle(true)
	}
	if len(self.got) != 0 {
		t.Fatal("No Local ignored")
	}
	if len(on.got) != 3 || len(off.got) != 0 {
		t.Fatalf("shared: online member got %d, offline %d", len(on.got), len(off.got))
	}
	if !on.settled[1] || !on.settled[3] {
		t.Fatalf("settled %v", on.settled)
	}
}

func TestRetainedAppliedOnSettle(t *testing.T) {
	r := New()
	var b store.Batch
	f := r.Route(&store.Message{ID: 1, Topic: "r", Retain: true, Payload: []byte("v")}, false, &b)
	if len(r.Retained("#")) != 0 {
		t.Fatal("retained visible before commit")
	}
	f.Settle(true)
	if got := r.Retained("#"); len(got) != 1 || string(got[0].Payload) != "v" {
		t.Fatalf("retained %v", got)
	}
	b = store.Batch{}
	r.Route(&store.Message{ID: 2, Topic: "r", Retain: true}, false, &b).Settle(true)
	if r.RetainedCount() != 0 || b.Ops[0].Kind != store.OpDeleteRetained {
		t.Fatal("empty retained payload did not delete")
	}
}

func mustSub(t *testing.T, r *Router, id string, sb Subscriber, s store.Subscription) {
	t.Helper()
	if _, err := r.Subscribe(id, sb, s); err != nil {
		t.Fatal(err)
	}
}

// TestRouteMergeAcrossRoutes routes through the pooled working memory in
// turn with and without overlapping filters: every subscriber is offered
// each message once, with the identifiers of all its matching filters.
func TestRouteMergeAcrossRoutes(t *testing.T) {
	r := New()
	subs := map[string]*fakeSub{}
	for _, id := range []string{"a", "b", "c"} {
		subs[id] = &fakeSub{store: true}
		mustSub(t, r, id, subs[id], store.Subscription{Filter: "x/#", QoS: 1, ID: 1})
	}
	mustSub(t, r, "a", subs["a"], store.Subscription{Filter: "x/+", QoS: 1, ID: 2})
	mustSub(t, r, "b", subs["b"], store.Subscription{Filter: "y", QoS: 1, ID: 3})
	mustSub(t, r, "c", subs["c"], store.Subscription{Filter: "y", QoS: 1, ID: 4})
	routes := []struct {
		topic string
		want  map[string][]uint32
	}{
		{"x/1", map[string][]uint32{"a": {1, 2}, "b": {1}, "c": {1}}},
		{"y", map[string][]uint32{"b": {3}, "c": {4}}},
		{"x/1/2", map[string][]uint32{"a": {1}, "b": {1}, "c": {1}}},
		{"x/2", map[string][]uint32{"a": {1, 2}, "b": {1}, "c": {1}}},
	}
	for i, rt := range routes {
		for _, s := range subs {
			s.got = nil
		}
		var b store.Batch
		f := r.Route(&store.Message{ID: uint64(i + 1), Topic: rt.topic, QoS: 1, Payload: []byte("p")}, false, &b)
		if f.Matched != len(rt.want) || f.Stored != len(rt.want) || b.Len() != len(rt.want)+1 {
			t.Fatalf("%s: matched %d stored %d ops %d", rt.topic, f.Matched, f.Stored, b.Len())
		}
		f.Settle(true)
		for id, s := range subs {
			want, ok := rt.want[id]
			if !ok {
				if len(s.got) != 0 {
					t.Fatalf("%s: %s offered %v", rt.topic, id, s.got)
				}
				continue
			}
			if len(s.got) != 1 || !slices.Equal(sorted(s.got[0].SubscriptionIDs), want) {
				t.Fatalf("%s: %s offered %+v, want once with %v", rt.topic, id, s.got, want)
			}
		}
	}
}

func sorted(ids []uint32) []uint32 { return slices.Sorted(slices.Values(ids)) }

// TestReleasedFanoutStartsEmpty routes a retained message that a
// subscriber stores and one that matches nobody, releasing each Fanout
// after Settle: a recycled Fanout carries nothing of the previous publish.
func TestReleasedFanoutStartsEmpty(t *testing.T) {
	r := New()
	s := &fakeSub{store: true}
	mustSub(t, r, "s", s, store.Subscription{Filter: "a", QoS: 1})
	for i := range 4 {
		var b store.Batch
		f := r.Route(&store.Message{ID: uint64(2*i + 1), Topic: "a", QoS: 1, Retain: true, Payload: []byte("v")}, false, &b)
		if f.Matched != 1 || f.Stored != 1 || len(f.settles) != 1 || f.retain == nil {
			t.Fatalf("round %d: matched %d stored %d settles %d retain %v", i, f.Matched, f.Stored, len(f.settles), f.retain)
		}
		f.Settle(true)
		f.Release()
		f = r.Route(&store.Message{ID: uint64(2*i + 2), Topic: "b", QoS: 1, Payload: []byte("v")}, false, &b)
		if f.Matched != 0 || f.Stored != 0 || f.Rejected || len(f.settles) != 0 || f.retain != nil || f.unset {
			t.Fatalf("round %d: a recycled fan-out holds %+v", i, f)
		}
		f.Settle(true)
		f.Release()
	}
	if len(s.settled) != 4 || r.RetainedCount() != 1 {
		t.Fatalf("settled %v, retained %d", s.settled, r.RetainedCount())
	}
}

// TestSubscriptionCarriesItsSubscriber: a subscription delivers to the
// subscriber that made it. A later subscriber with the same ID (a new
// session after a clean start) gets only its own subscriptions, and a
// removed subscriber's filters reach nobody.
func TestSubscriptionCarriesItsSubscriber(t *testing.T) {
	r := New()
	old, cur := &fakeSub{online: true}, &fakeSub{online: true}
	mustSub(t, r, "c", old, store.Subscription{Filter: "a", QoS: 1})
	mustSub(t, r, "c", old, store.Subscription{Filter: "$share/g/s", QoS: 1})
	r.Unregister("c", []string{"a", "$share/g/s"})
	mustSub(t, r, "c", cur, store.Subscription{Filter: "b", QoS: 1})
	mustSub(t, r, "c", cur, store.Subscription{Filter: "$share/g/s", QoS: 1})
	for i, topic := range []string{"a", "b", "s"} {
		var b store.Batch
		r.Route(&store.Message{ID: uint64(i + 1), Topic: topic, QoS: 1, Payload: []byte("p")}, false, &b).Settle(true)
	}
	if len(old.got) != 0 || len(cur.got) != 2 {
		t.Fatalf("the removed subscriber was offered %d messages, the current one %d; want 0 and 2", len(old.got), len(cur.got))
	}
	if r.Subscriptions() != 2 {
		t.Fatalf("%d subscriptions, want 2", r.Subscriptions())
	}
}

// TestEntrySize keeps a subscription in the trie within 64 bytes: a fleet
// holds one per device.
func TestEntrySize(t *testing.T) {
	if got := unsafe.Sizeof(topic.Sub[entry]{}); got > 64 {
		t.Fatalf("a subscription in the trie is %d bytes, over 64", got)
	}
}

// TestDeliverableOnlyEarly: a fan-out's early entries are those of the
// subscribers whose Offer said Early, with their entry's Seq, and
// Deliverable reaches those and no other.
func TestDeliverableOnlyEarly(t *testing.T) {
	r := New()
	early, late, clean := &fakeSub{online: true, store: true, early: true}, &fakeSub{online: true, store: true}, &fakeSub{online: true}
	mustSub(t, r, "e", early, store.Subscription{Filter: "x", QoS: 1})
	mustSub(t, r, "l", late, store.Subscription{Filter: "x", QoS: 1})
	mustSub(t, r, "c", clean, store.Subscription{Filter: "x", QoS: 1})
	deliver := func(es []Early) {
		for _, e := range es {
			e.Deliverable()
		}
	}
	var b store.Batch
	f := r.Route(&store.Message{ID: 1, Topic: "x", QoS: 1, Payload: []byte("p")}, false, &b)
	es := f.AppendEarly(nil)
	if len(early.freed)+len(late.freed) != 0 {
		t.Fatal("Route made an entry deliverable before the caller submitted its batch")
	}
	f.Settle(true)
	f.Release()
	deliver(es) // taken before the release: still names the entry
	if !slices.Equal(early.freed, []uint64{1}) || len(late.freed) != 0 || len(clean.freed) != 0 {
		t.Fatalf("Deliverable: early %v, late %v, clean %v; want [1], [], []", early.freed, late.freed, clean.freed)
	}

	f = r.Route(&store.Message{ID: 2, Topic: "x", QoS: 1, Payload: []byte("p")}, false, &b)
	early.early = false
	deliver(f.AppendEarly(es[:0])) // the Early of the Offer counts, not the subscriber's later state
	if !slices.Equal(early.freed, []uint64{1, 2}) {
		t.Fatalf("second Deliverable: %v, want [1 2]", early.freed)
	}
	f.Settle(true)
	f.Release()
	f = r.Route(&store.Message{ID: 3, Topic: "x", QoS: 1, Payload: []byte("p")}, false, &b)
	if es := f.AppendEarly(nil); len(es) != 0 {
		t.Fatalf("a fan-out with no Early entry gave %v", es)
	}
}
