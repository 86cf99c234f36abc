package storetest

import (
	"reflect"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// RunDurable runs the durability part of the contract: open opens (or
// creates) the store in dir; each subtest commits, closes, reopens on the
// same dir and checks that everything survived. The suite closes every
// store it opens.
func RunDurable(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, reopen func() store.Store)
	}{
		{"EverythingSurvives", testEverythingSurvives},
		{"RefCountsSurvive", testRefCountsSurvive},
		{"LastSeqSurvives", testLastSeqSurvives},
		{"NextMessageIDSurvives", testNextMessageIDSurvives},
		{"NoSyncBatchesSurviveClose", testNoSyncSurvivesClose},
		{"DeletesSurvive", testDeletesSurvive},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var cur store.Store
			reopen := func() store.Store {
				t.Helper()
				if cur != nil {
					if err := cur.Close(); err != nil {
						t.Fatalf("Close: %v", err)
					}
				}
				cur = open(t, dir)
				return cur
			}
			t.Cleanup(func() {
				if cur != nil {
					_ = cur.Close() // may already be closed by a failed test
				}
			})
			tc.fn(t, reopen)
		})
	}
}

func testEverythingSurvives(t *testing.T, reopen func() store.Store) {
	s := reopen()
	populate(t, s)
	commit(t, s, func(b *store.Batch) {
		b.PutSession(&store.Session{ClientID: "minimal"}) // zero times, no will
		b.PutSubscription("b", &store.Subscription{Filter: "$share/g/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1, ID: 9})
		b.UpdateEntry("a", &store.QueueEntry{Seq: 1, State: store.Sent, PacketID: 65535, QoS: 2, Retain: true})
		b.UpdateEntry("b", &store.QueueEntry{Seq: 1, State: store.Released, PacketID: 1, QoS: 1})
		b.PutInboundQoS2("a", 12)
		empty := &store.Message{ID: 50, Topic: "e"} // no payload, no properties, no times
		b.PutMessage(empty)
		b.Enqueue("minimal", &store.QueueEntry{Seq: 1, MessageID: 50})
		r := message(101, "")
		r.Topic = ""
		b.PutRetained(r)
	})
	want := takeDump(t, s)
	s = reopen()
	checkDump(t, "after reopen", takeDump(t, s), want)
	s = reopen()
	checkDump(t, "after a second reopen", takeDump(t, s), want)
}

func testRefCountsSurvive(t *testing.T, reopen func() store.Store) {
	s := reopen()
	populate(t, s) // message 1 is shared by a and b, message 2 is a's only
	s = reopen()
	commit(t, s, func(b *store.Batch) { b.Dequeue("a", 1) })
	if st := s.Stats(); st.Messages != 2 {
		t.Fatalf("shared message deleted with its first reference: %+v", st)
	}
	s = reopen()
	commit(t, s, func(b *store.Batch) { b.Dequeue("b", 1) })
	if st := s.Stats(); st.Messages != 1 || st.Bytes != message(2, "a only").Size() {
		t.Fatalf("stats after last reference = %+v", st)
	}
	s = reopen()
	if st := s.Stats(); st.Messages != 1 || st.Sessions != 2 || st.Retained != 1 {
		t.Fatalf("stats after reopen = %+v", st)
	}
	commit(t, s, func(b *store.Batch) { b.DeleteSession("a") })
	s = reopen()
	if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 {
		t.Fatalf("stats after cascade and reopen = %+v", st)
	}
}

func testLastSeqSurvives(t *testing.T, reopen func() store.Store) {
	s := reopen()
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")); b.PutSession(session("b")) })
	fill(t, s, "a", 1, 20)
	fill(t, s, "b", 21, 30)
	commit(t, s, func(b *store.Batch) {
		for seq := uint64(1); seq <= 20; seq++ {
			b.Dequeue("a", seq)
		}
		b.Dequeue("b", 30) // the tail goes first; LastSeq stays 30
	})
	s = reopen()
	st := sessions(t, s)
	if got := st["a"].Queue; got != (store.QueueStats{LastSeq: 20}) {
		t.Fatalf("drained queue after reopen = %+v, want LastSeq 20", got)
	}
	if got := st["b"].Queue; got.LastSeq != 30 || got.Messages != 9 {
		t.Fatalf("queue b after reopen = %+v, want LastSeq 30 and 9 messages", got)
	}
	if err := tryCommit(s, func(b *store.Batch) { b.PutMessage(message(99, "x")); b.Enqueue("a", entry(20, 99)) }); err == nil {
		t.Fatal("enqueue at LastSeq succeeded after reopen")
	}
}

func testNextMessageIDSurvives(t *testing.T, reopen func() store.Store) {
	s := reopen()
	var last uint64
	for range 100 {
		last = s.NextMessageID()
	}
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")) })
	fill(t, s, "a", 1000, 1010) // IDs taken by the caller, above the counter
	commit(t, s, func(b *store.Batch) {
		for seq := uint64(1000); seq <= 1010; seq++ {
			b.Dequeue("a", seq)
		}
	})
	s = reopen()
	if id := s.NextMessageID(); id <= last || id <= 1010 {
		t.Fatalf("NextMessageID after reopen = %d, want > %d and > 1010", id, last)
	}
	last = s.NextMessageID()
	s = reopen()
	if id := s.NextMessageID(); id <= last {
		t.Fatalf("NextMessageID after second reopen = %d, want > %d", id, last)
	}
}

func testNoSyncSurvivesClose(t *testing.T, reopen func() store.Store) {
	s := reopen()
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")); b.NoSync = true })
	fill(t, s, "a", 1, 5)
	commit(t, s, func(b *store.Batch) {
		b.UpdateEntry("a", &store.QueueEntry{Seq: 1, State: store.Sent, PacketID: 5, QoS: 1})
		b.NoSync = true
	})
	want := takeDump(t, s)
	s = reopen()
	checkDump(t, "NoSync batches after Close and reopen", takeDump(t, s), want)
}

func testDeletesSurvive(t *testing.T, reopen func() store.Store) {
	s := reopen()
	populate(t, s)
	commit(t, s, func(b *store.Batch) {
		b.DeleteSession("b")
		b.DeleteSubscription("a", "t/#")
		b.DeleteRetained("r/x")
		b.Dequeue("a", 2)
	})
	want := takeDump(t, s)
	s = reopen()
	got := takeDump(t, s)
	checkDump(t, "deletes after reopen", got, want)
	if len(got.Sessions) != 1 || len(got.Retained) != 0 || !reflect.DeepEqual(seqs(got.Queues["a"]), []uint64{1}) {
		t.Fatalf("unexpected state after reopen: %s", show(got))
	}
}
