package storetest

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// Run runs the contract suite. open returns a fresh, empty store for each
// subtest; the suite closes it.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"SessionPutReplaceDelete", testSessionPutReplaceDelete},
		{"SessionDeleteCascades", testSessionDeleteCascades},
		{"Subscriptions", testSubscriptions},
		{"QueueOrder", testQueueOrder},
		{"QueueReadEnds", testQueueReadEnds},
		{"QueueRules", testQueueRules},
		{"SameBatchEntries", testSameBatchEntries},
		{"QueueStats", testQueueStats},
		{"FanOutStoredOnce", testFanOutStoredOnce},
		{"UnreferencedMessageNotStored", testUnreferencedMessage},
		{"UpdateEntry", testUpdateEntry},
		{"InboundQoS2", testInboundQoS2},
		{"OwnedStateOfManySessions", testOwnedStateOfManySessions},
		{"Retained", testRetained},
		{"NextMessageID", testNextMessageID},
		{"BatchAtomicity", testBatchAtomicity},
		{"CanceledContext", testCanceledContext},
		{"ResultsAreCopies", testResultsAreCopies},
		{"CommitInsideReadQueue", testCommitInsideReadQueue},
		{"ConcurrentCommits", testConcurrentCommits},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			closed := false
			t.Cleanup(func() {
				if !closed {
					_ = s.Close() // the test's own Close may have run
				}
			})
			if tc.name == "Closed" {
				closed = true
			}
			tc.fn(t, s)
		})
	}
}

func testSessionPutReplaceDelete(t *testing.T, s store.Store) {
	a, b := session("a"), session("b")
	commit(t, s, func(bt *store.Batch) { bt.PutSession(a); bt.PutSession(b) })
	got := sessions(t, s)
	if len(got) != 2 || !reflect.DeepEqual(got["a"].Session, normSession(*a)) {
		t.Fatalf("sessions after put: %+v", got)
	}
	if st := s.Stats(); st.Sessions != 2 {
		t.Fatalf("Stats.Sessions = %d, want 2", st.Sessions)
	}
	a2 := session("a")
	a2.Will, a2.DisconnectedAt, a2.ProtocolVersion, a2.ExpiryInterval = nil, a2.DisconnectedAt.Add(0), 4, 7
	a2.DisconnectedAt = a2.DisconnectedAt.AddDate(0, 0, 1)
	commit(t, s, func(bt *store.Batch) { bt.PutSession(a2) })
	got = sessions(t, s)
	if !reflect.DeepEqual(got["a"].Session, normSession(*a2)) {
		t.Fatalf("replaced session = %+v, want %+v", got["a"].Session, *a2)
	}
	if st := s.Stats(); st.Sessions != 2 {
		t.Fatalf("Stats.Sessions after replace = %d, want 2", st.Sessions)
	}
	commit(t, s, func(bt *store.Batch) { bt.DeleteSession("a"); bt.DeleteSession("nobody") })
	got = sessions(t, s)
	if len(got) != 1 || got["b"] == nil {
		t.Fatalf("sessions after delete: %v", got)
	}
	if st := s.Stats(); st.Sessions != 1 {
		t.Fatalf("Stats.Sessions after delete = %d, want 1", st.Sessions)
	}
}

func testSessionDeleteCascades(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) {
		b.PutSession(session("a"))
		b.PutSession(session("b"))
		b.PutSubscription("a", &store.Subscription{Filter: "x/#", QoS: 1})
		b.PutMessage(message(1, "shared"))
		b.PutMessage(message(2, "only-a"))
		b.Enqueue("a", entry(1, 1))
		b.Enqueue("a", entry(2, 2))
		b.Enqueue("b", entry(1, 1))
		b.PutInboundQoS2("a", 9)
	})
	commit(t, s, func(b *store.Batch) { b.DeleteSession("a") })
	if st := s.Stats(); st.Sessions != 1 || st.Messages != 1 || st.Bytes != message(1, "shared").Size() {
		t.Fatalf("stats after cascade = %+v, want 1 session, message 1 only", st)
	}
	if q := readQueue(t, s, "b", 0, 0); len(q) != 1 || q[0].M.ID != 1 {
		t.Fatalf("queue of b = %v", seqs(q))
	}
	// A new session with the same ID starts empty.
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")) })
	st := sessions(t, s)["a"]
	if len(st.Subscriptions) != 0 || len(st.InboundQoS2) != 0 || st.Queue != (store.QueueStats{}) {
		t.Fatalf("recreated session not empty: %+v", st)
	}
	if q := readQueue(t, s, "a", 0, 0); len(q) != 0 {
		t.Fatalf("recreated session has queue %v", seqs(q))
	}
	commit(t, s, func(b *store.Batch) { b.PutMessage(message(3, "new")); b.Enqueue("a", entry(1, 3)) })
	commit(t, s, func(b *store.Batch) { b.DeleteSession("b"); b.DeleteSession("a") })
	if st := s.Stats(); st != (store.Stats{}) {
		t.Fatalf("stats after deleting all = %+v", st)
	}
}

func testSubscriptions(t *testing.T, s store.Store) {
	err := tryCommit(s, func(b *store.Batch) { b.PutSubscription("ghost", &store.Subscription{Filter: "a"}) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("subscription for unknown session: err = %v, want ErrNotFound", err)
	}
	s1 := store.Subscription{Filter: "$share/g/a/+", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 268435455}
	s2 := store.Subscription{Filter: "a/#", QoS: 1}
	commit(t, s, func(b *store.Batch) {
		b.PutSession(session("c"))
		b.PutSubscription("c", &s2)
		b.PutSubscription("c", &s1)
	})
	if got := sessions(t, s)["c"].Subscriptions; !reflect.DeepEqual(got, []store.Subscription{s1, s2}) {
		t.Fatalf("subscriptions = %+v (want filter order)", got)
	}
	s2b := s2
	s2b.QoS, s2b.ID = 0, 5
	commit(t, s, func(b *store.Batch) {
		b.PutSubscription("c", &s2b)
		b.DeleteSubscription("c", s1.Filter)
		b.DeleteSubscription("c", "never")
		b.DeleteSubscription("ghost", "x")
	})
	if got := sessions(t, s)["c"].Subscriptions; !reflect.DeepEqual(got, []store.Subscription{s2b}) {
		t.Fatalf("subscriptions after replace/delete = %+v", got)
	}
}

func testInboundQoS2(t *testing.T, s store.Store) {
	err := tryCommit(s, func(b *store.Batch) { b.PutInboundQoS2("ghost", 1) })
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("inbound for unknown session: err = %v, want ErrNotFound", err)
	}
	commit(t, s, func(b *store.Batch) {
		b.PutSession(session("c"))
		b.PutInboundQoS2("c", 65535)
		b.PutInboundQoS2("c", 1)
		b.PutInboundQoS2("c", 300)
		b.PutInboundQoS2("c", 1) // a DUP redelivery
	})
	if got := sessions(t, s)["c"].InboundQoS2; !reflect.DeepEqual(got, []uint16{1, 300, 65535}) {
		t.Fatalf("inbound = %v", got)
	}
	commit(t, s, func(b *store.Batch) {
		b.DeleteInboundQoS2("c", 300)
		b.DeleteInboundQoS2("c", 2)
		b.DeleteInboundQoS2("ghost", 2)
	})
	if got := sessions(t, s)["c"].InboundQoS2; !reflect.DeepEqual(got, []uint16{1, 65535}) {
		t.Fatalf("inbound after delete = %v", got)
	}
}

// testOwnedStateOfManySessions: each session gets its own subscriptions
// and inbound QoS 2 IDs back, also when client IDs are prefixes of one
// another and some sessions have none (a store may read them in one pass
// in client ID order).
func testOwnedStateOfManySessions(t *testing.T, s store.Store) {
	ids := []string{"a", "a/b", "a0", "ab", "b", "b\u00e9", "c", "d"}
	commit(t, s, func(b *store.Batch) {
		for i, id := range ids {
			b.PutSession(session(id))
			if i%3 == 2 {
				continue // neither subscriptions nor inbound state
			}
			b.PutSubscription(id, &store.Subscription{Filter: id + "/x", QoS: byte(i % 3)})
			b.PutSubscription(id, &store.Subscription{Filter: "all/" + id, QoS: 1})
			if i%2 == 0 {
				b.PutInboundQoS2(id, uint16(i+1))
			}
		}
	})
	got := sessions(t, s)
	if len(got) != len(ids) {
		t.Fatalf("%d sessions, want %d", len(got), len(ids))
	}
	for i, id := range ids {
		var subs []store.Subscription
		var inbound []uint16
		if i%3 != 2 {
			subs = []store.Subscription{{Filter: id + "/x", QoS: byte(i % 3)}, {Filter: "all/" + id, QoS: 1}}
			slices.SortFunc(subs, func(x, y store.Subscription) int { return strings.Compare(x.Filter, y.Filter) })
			if i%2 == 0 {
				inbound = []uint16{uint16(i + 1)}
			}
		}
		if st := got[id]; !reflect.DeepEqual(st.Subscriptions, subs) || !reflect.DeepEqual(st.InboundQoS2, inbound) {
			t.Errorf("%q: subscriptions %+v inbound %v, want %+v and %v", id, st.Subscriptions, st.InboundQoS2, subs, inbound)
		}
	}
}

func testRetained(t *testing.T, s store.Store) {
	m1, m2 := message(1, "one"), message(2, "two")
	m1.Topic, m2.Topic = "r/1", "r/2"
	commit(t, s, func(b *store.Batch) { b.PutRetained(m1); b.PutRetained(m2) })
	got := retained(t, s)
	if len(got) != 2 || !reflect.DeepEqual(got["r/1"], normMessage(*m1)) {
		t.Fatalf("retained = %+v", got)
	}
	if st := s.Stats(); st.Retained != 2 || st.Messages != 0 || st.Bytes != 0 {
		t.Fatalf("stats = %+v, want 2 retained and no queued messages", st)
	}
	m1b := message(3, "one again")
	m1b.Topic = "r/1"
	commit(t, s, func(b *store.Batch) { b.PutRetained(m1b); b.DeleteRetained("r/2"); b.DeleteRetained("r/none") })
	got = retained(t, s)
	if len(got) != 1 || !reflect.DeepEqual(got["r/1"], normMessage(*m1b)) {
		t.Fatalf("retained after replace/delete = %+v", got)
	}
	if st := s.Stats(); st.Retained != 1 {
		t.Fatalf("Stats.Retained = %d, want 1", st.Retained)
	}
	// Later operations of a batch see the retained changes of earlier ones.
	m4, m5 := message(4, "four"), message(5, "five")
	m4.Topic, m5.Topic = "r/4", "r/1"
	commit(t, s, func(b *store.Batch) {
		b.PutRetained(m4)
		b.DeleteRetained("r/4")
		b.DeleteRetained("r/1")
		b.DeleteRetained("r/1")
		b.PutRetained(m5)
		b.PutRetained(m5)
	})
	got = retained(t, s)
	if len(got) != 1 || !reflect.DeepEqual(got["r/1"], normMessage(*m5)) {
		t.Fatalf("retained after changes within one batch = %+v", got)
	}
	if st := s.Stats(); st.Retained != 1 {
		t.Fatalf("Stats.Retained = %d after changes within one batch, want 1", st.Retained)
	}
}

func testNextMessageID(t *testing.T, s store.Store) {
	const goroutines, per = 4, 500
	ids := make(chan []uint64, goroutines)
	for range goroutines {
		go func() {
			var mine []uint64
			for range per {
				mine = append(mine, s.NextMessageID())
			}
			ids <- mine
		}()
	}
	seen := make(map[uint64]bool)
	for range goroutines {
		mine := <-ids
		for i, id := range mine {
			if id == 0 || seen[id] || (i > 0 && id <= mine[i-1]) {
				t.Fatalf("NextMessageID issued %d (index %d) out of order or twice", id, i)
			}
			seen[id] = true
		}
	}
}

func testClosed(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")) })
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checks := map[string]error{
		"Commit":           tryCommit(s, func(b *store.Batch) { b.PutSession(session("b")) }),
		"LoadSessions":     s.LoadSessions(func(*store.SessionState) error { return nil }),
		"LoadRetained":     s.LoadRetained(func(*store.Message) error { return nil }),
		"ReadQueue":        s.ReadQueue("a", 0, 0, func(store.QueueEntry, *store.Message) bool { return true }),
		"ReadQueueEntries": s.ReadQueueEntries("a", 0, 0, func(store.QueueEntry, int64) bool { return true }),
	}
	for name, err := range checks {
		if !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close: err = %v, want ErrClosed", name, err)
		}
	}
}
