package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// populate gives s some of everything: two sessions sharing a message,
// subscriptions, inbound QoS 2 state and a retained message.
func populate(t testing.TB, s store.Store) {
	t.Helper()
	r := message(100, "retained")
	r.Topic = "r/x"
	commit(t, s, func(b *store.Batch) {
		b.PutSession(session("a"))
		b.PutSession(session("b"))
		b.PutSubscription("a", &store.Subscription{Filter: "t/#", QoS: 2})
		b.PutMessage(message(1, "shared"))
		b.PutMessage(message(2, "a only"))
		b.Enqueue("a", entry(1, 1))
		b.Enqueue("a", entry(2, 2))
		b.Enqueue("b", entry(1, 1))
		b.PutInboundQoS2("b", 4)
		b.PutRetained(r)
	})
}

func testBatchAtomicity(t *testing.T, s store.Store) {
	populate(t, s)
	before := takeDump(t, s)
	bad := func(b *store.Batch) { b.Enqueue("b", entry(2, 999)) } // unknown message
	cases := map[string]func(b *store.Batch){
		"every kind then a bad enqueue": func(b *store.Batch) {
			b.PutSession(session("c"))
			b.PutSubscription("c", &store.Subscription{Filter: "z"})
			b.PutSubscription("a", &store.Subscription{Filter: "t/#", QoS: 0})
			b.DeleteSubscription("a", "t/#")
			b.PutMessage(message(3, "new"))
			b.Enqueue("c", entry(1, 3))
			b.Enqueue("a", entry(3, 1))
			b.UpdateEntry("a", &store.QueueEntry{Seq: 1, State: store.Sent, PacketID: 1})
			b.Dequeue("a", 2)
			b.PutInboundQoS2("a", 1)
			b.DeleteInboundQoS2("b", 4)
			b.PutRetained(message(5, "r"))
			b.DeleteRetained("r/x")
			bad(b)
		},
		"cascading delete then a bad enqueue": func(b *store.Batch) {
			b.DeleteSession("a")
			b.DeleteSession("b")
			b.PutSession(session("b"))
			bad(b)
		},
		"dequeue of the last reference then a bad enqueue": func(b *store.Batch) {
			b.Dequeue("a", 1)
			b.Dequeue("b", 1)
			bad(b)
		},
		"replace session then a bad op": func(b *store.Batch) {
			sa := session("a")
			sa.Will = nil
			b.PutSession(sa)
			b.Dequeue("a", 77)
		},
	}
	for name, fill := range cases {
		if err := tryCommit(s, fill); err == nil {
			t.Fatalf("%s: commit succeeded", name)
		}
		checkDump(t, name, takeDump(t, s), before)
	}
	// The store is still usable and consistent.
	commit(t, s, func(b *store.Batch) { b.Dequeue("a", 1); b.Dequeue("a", 2); b.Dequeue("b", 1) })
	if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 || st.Sessions != 2 {
		t.Fatalf("stats after draining = %+v", st)
	}
}

func testCanceledContext(t *testing.T, s store.Store) {
	c, cancel := context.WithCancel(ctx)
	cancel()
	var b store.Batch
	b.PutSession(session("a"))
	if err := s.Commit(c, &b); !errors.Is(err, context.Canceled) {
		t.Fatalf("commit with canceled context: err = %v", err)
	}
	if n := len(sessions(t, s)); n != 0 {
		t.Fatalf("canceled commit stored %d sessions", n)
	}
}

func testResultsAreCopies(t *testing.T, s store.Store) {
	populate(t, s)
	before := takeDump(t, s)
	// A queue entry is the reader's; its message is read-only (see
	// store.Store.ReadQueue), and is not changed here.
	if err := s.ReadQueue("a", 0, 0, func(e store.QueueEntry, _ *store.Message) bool {
		e.SubscriptionIDs[0] = 1
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadQueueEntries("a", 0, 0, func(e store.QueueEntry, _ int64) bool {
		e.SubscriptionIDs[0] = 2
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.LoadSessions(func(st *store.SessionState) error {
		st.Session.Will.Message.Payload[0] = 'X'
		if len(st.Subscriptions) > 0 {
			st.Subscriptions[0].QoS = 0
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.LoadRetained(func(m *store.Message) error { m.Payload[0] = 'X'; return nil }); err != nil {
		t.Fatal(err)
	}
	checkDump(t, "after mutating returned records", takeDump(t, s), before)
	// A commit that rewrites what was read (a store may keep the records
	// it read for its next commits) writes no change made through them.
	if err := s.ReadQueue("a", 0, 0, func(e store.QueueEntry, _ *store.Message) bool {
		e.SubscriptionIDs[0] = 3
		return true
	}); err != nil {
		t.Fatal(err)
	}
	commit(t, s, func(b *store.Batch) { b.Dequeue("a", 2) })
	if got, want := readQueue(t, s, "a", 0, 0), before.Queues["a"][:1]; !reflect.DeepEqual(got, want) {
		t.Fatalf("after a commit that rewrote the entries read: %+v, want %+v", got, want)
	}
}

// testCommitInsideReadQueue checks that ReadQueue holds no lock while fn
// runs: the session layer acknowledges entries as it streams them.
func testCommitInsideReadQueue(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")) })
	fill(t, s, "a", 1, 200)
	err := s.ReadQueue("a", 0, 0, func(e store.QueueEntry, _ *store.Message) bool {
		commit(t, s, func(b *store.Batch) { b.Dequeue("a", e.Seq) })
		_ = s.Stats()
		return true
	})
	if err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Messages != 0 {
		t.Fatalf("stats after dequeuing while reading = %+v", st)
	}
}

func testConcurrentCommits(t *testing.T, s store.Store) {
	const writers, rounds = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, writers+1)
	stop := make(chan struct{})
	wg.Add(writers)
	for w := range writers {
		go func() {
			defer wg.Done()
			errs <- writer(s, fmt.Sprintf("w%d", w), rounds)
		}()
	}
	var rg sync.WaitGroup
	rg.Add(1)
	go func() {
		defer rg.Done()
		errs <- reader(s, stop)
	}()
	wg.Wait()
	close(stop)
	rg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	st := sessions(t, s)
	for w := range writers {
		for _, suffix := range []string{"x", "y"} {
			q := st[fmt.Sprintf("w%d%s", w, suffix)].Queue
			if q.Messages != rounds/2 || q.LastSeq != rounds {
				t.Fatalf("writer %d queue %s = %+v", w, suffix, q)
			}
		}
	}
	if got := s.Stats(); got.Messages != writers*rounds/2 || got.Sessions != 2*writers {
		t.Fatalf("stats = %+v", got)
	}
}

// writer fans each of its messages out to its two sessions, and dequeues
// every other round's entries again.
func writer(s store.Store, name string, rounds int) error {
	x, y := name+"x", name+"y"
	if err := tryCommit(s, func(b *store.Batch) { b.PutSession(session(x)); b.PutSession(session(y)) }); err != nil {
		return err
	}
	for r := 1; r <= rounds; r++ {
		seq := uint64(r)
		id := s.NextMessageID()
		err := tryCommit(s, func(b *store.Batch) {
			b.PutMessage(message(id, name))
			b.Enqueue(x, entry(seq, id))
			b.Enqueue(y, entry(seq, id))
			if seq%2 == 0 {
				b.Dequeue(x, seq-1)
				b.Dequeue(y, seq-1)
			}
			b.NoSync = seq%3 == 0
		})
		if err != nil {
			return fmt.Errorf("%s round %d: %w", name, r, err)
		}
	}
	return nil
}

func reader(s store.Store, stop chan struct{}) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		_ = s.Stats()
		err := s.LoadSessions(func(st *store.SessionState) error {
			var last uint64
			var bad error
			err := s.ReadQueue(st.Session.ClientID, 0, 0, func(e store.QueueEntry, m *store.Message) bool {
				if e.Seq <= last || m.ID != e.MessageID {
					bad = fmt.Errorf("bad read: seq %d after %d, message %d for %d", e.Seq, last, m.ID, e.MessageID)
					return false
				}
				last = e.Seq
				return true
			})
			return errors.Join(err, bad)
		})
		if err != nil {
			return err
		}
	}
}
