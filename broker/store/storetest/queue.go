package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// fill enqueues messages first..last (one message per entry, seq == ID) to
// clientID, in batches of 50.
func fill(t testing.TB, s store.Store, clientID string, first, last uint64) {
	t.Helper()
	for lo := first; lo <= last; lo += 50 {
		commit(t, s, func(b *store.Batch) {
			for id := lo; id < lo+50 && id <= last; id++ {
				b.PutMessage(message(id, "payload"))
				b.Enqueue(clientID, entry(id, id))
			}
		})
	}
}

func testQueueOrder(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")); b.PutSession(session("b")) })
	fill(t, s, "a", 1, 300)
	all := readQueue(t, s, "a", 0, 0)
	if len(all) != 300 {
		t.Fatalf("read %d entries, want 300", len(all))
	}
	for i, it := range all {
		want := uint64(i + 1)
		if it.E.Seq != want || it.M.ID != want || it.E.MessageID != want {
			t.Fatalf("entry %d = seq %d msg %d, want %d", i, it.E.Seq, it.M.ID, want)
		}
	}
	if !reflect.DeepEqual(all[0].M, normMessage(*message(1, "payload"))) ||
		!reflect.DeepEqual(all[0].E, normEntry(*entry(1, 1))) {
		t.Fatalf("first entry = %+v", all[0])
	}
	if got := seqs(readQueue(t, s, "a", 295, 0)); !reflect.DeepEqual(got, []uint64{296, 297, 298, 299, 300}) {
		t.Fatalf("afterSeq 295: %v", got)
	}
	if got := seqs(readQueue(t, s, "a", 10, 3)); !reflect.DeepEqual(got, []uint64{11, 12, 13}) {
		t.Fatalf("afterSeq 10 limit 3: %v", got)
	}
	if got := readQueue(t, s, "a", 200, 1000); len(got) != 100 {
		t.Fatalf("limit beyond end: %d entries", len(got))
	}
	if got := readQueue(t, s, "a", 300, 0); len(got) != 0 {
		t.Fatalf("after last: %v", seqs(got))
	}
	calls := 0
	if err := s.ReadQueue("a", 0, 0, func(store.QueueEntry, *store.Message) bool { calls++; return calls < 2 }); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("fn called %d times after returning false, want 2", calls)
	}
	for _, id := range []string{"b", "ghost"} {
		if got := readQueue(t, s, id, 0, 0); len(got) != 0 {
			t.Fatalf("queue of %q: %v", id, seqs(got))
		}
	}
	// Removing from the middle and the head keeps the order.
	commit(t, s, func(b *store.Batch) { b.Dequeue("a", 1); b.Dequeue("a", 150); b.Dequeue("a", 2) })
	got := seqs(readQueue(t, s, "a", 148, 3))
	if !reflect.DeepEqual(got, []uint64{149, 151, 152}) {
		t.Fatalf("after dequeues: %v", got)
	}
	if got := seqs(readQueue(t, s, "a", 0, 1)); !reflect.DeepEqual(got, []uint64{3}) {
		t.Fatalf("head after dequeues: %v", got)
	}
}

// testQueueReadEnds checks where reads stop: after the largest Seq there
// is nothing, and ReadQueueEntries stops when fn returns false.
func testQueueReadEnds(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")) })
	fill(t, s, "a", 1, 3)
	if got := readQueue(t, s, "a", ^uint64(0), 0); len(got) != 0 {
		t.Fatalf("after the largest Seq: %v", seqs(got))
	}
	calls := 0
	if err := s.ReadQueueEntries("a", 0, 0, func(store.QueueEntry, int64) bool { calls++; return calls < 2 }); err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("ReadQueueEntries: fn called %d times after returning false, want 2", calls)
	}
}

func testQueueRules(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) {
		b.PutSession(session("a"))
		b.PutSession(session("b"))
		b.PutMessage(message(1, "x"))
		b.Enqueue("a", entry(5, 1))
		b.PutMessage(message(3, "shared"))
		b.Enqueue("a", entry(7, 3))
		b.Enqueue("b", entry(1, 3))
	})
	cases := map[string]struct {
		fill func(b *store.Batch)
		want error
	}{
		"enqueue to unknown session": {func(b *store.Batch) { b.Enqueue("ghost", entry(1, 1)) }, store.ErrNotFound},
		"enqueue unknown message":    {func(b *store.Batch) { b.Enqueue("a", entry(8, 42)) }, store.ErrNotFound},
		"enqueue stored message":     {func(b *store.Batch) { b.Enqueue("a", entry(8, 1)) }, store.ErrNotFound},
		"enqueue stored shared":      {func(b *store.Batch) { b.Enqueue("a", entry(8, 3)) }, store.ErrNotFound},
		"enqueue at last seq":        {func(b *store.Batch) { b.PutMessage(message(4, "y")); b.Enqueue("a", entry(7, 4)) }, store.ErrInvalid},
		"enqueue before last seq":    {func(b *store.Batch) { b.PutMessage(message(4, "y")); b.Enqueue("a", entry(6, 4)) }, store.ErrInvalid},
		"put stored message again":   {func(b *store.Batch) { b.PutMessage(message(3, "y")) }, store.ErrInvalid},
		"put message twice":          {func(b *store.Batch) { b.PutMessage(message(2, "y")); b.PutMessage(message(2, "y")) }, store.ErrInvalid},
		"put message without ID":     {func(b *store.Batch) { b.PutMessage(message(0, "y")) }, store.ErrInvalid},
		"dequeue unknown seq":        {func(b *store.Batch) { b.Dequeue("a", 4) }, store.ErrNotFound},
		"dequeue twice":              {func(b *store.Batch) { b.Dequeue("a", 5); b.Dequeue("a", 5) }, store.ErrNotFound},
		"dequeue unknown session":    {func(b *store.Batch) { b.Dequeue("ghost", 5) }, store.ErrNotFound},
		"update unknown seq":         {func(b *store.Batch) { b.UpdateEntry("a", entry(6, 1)) }, store.ErrNotFound},
		"update dequeued entry":      {func(b *store.Batch) { b.Dequeue("a", 5); b.UpdateEntry("a", entry(5, 1)) }, store.ErrNotFound},
		"unknown op kind":            {func(b *store.Batch) { b.Ops = append(b.Ops, store.Op{Kind: 200}) }, store.ErrInvalid},
	}
	before := takeDump(t, s)
	for name, tc := range cases {
		if err := tryCommit(s, tc.fill); !errors.Is(err, tc.want) {
			t.Errorf("%s: err = %v, want %v", name, err, tc.want)
		}
	}
	checkDump(t, "after rejected batches", takeDump(t, s), before)
	// Enqueue, update and dequeue of the same entry in one batch.
	commit(t, s, func(b *store.Batch) {
		b.PutMessage(message(2, "z"))
		b.Enqueue("a", entry(8, 2))
		b.UpdateEntry("a", &store.QueueEntry{Seq: 8, State: store.Sent, PacketID: 3})
		b.Dequeue("a", 8)
	})
	if st := s.Stats(); st.Messages != 2 {
		t.Fatalf("message enqueued and dequeued in one batch is stored: %+v", st)
	}
	if q := sessions(t, s)["a"].Queue; q.LastSeq != 8 || q.Messages != 2 {
		t.Fatalf("queue stats = %+v, want LastSeq 8, 2 messages", q)
	}
}

func testQueueStats(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")); b.PutSession(session("b")) })
	fill(t, s, "a", 1, 10)
	var size int64
	for id := uint64(1); id <= 10; id++ {
		size += message(id, "payload").Size()
	}
	st := sessions(t, s)
	if got, want := st["a"].Queue, (store.QueueStats{Messages: 10, Bytes: size, LastSeq: 10}); got != want {
		t.Fatalf("queue stats = %+v, want %+v", got, want)
	}
	if got := st["b"].Queue; got != (store.QueueStats{}) {
		t.Fatalf("empty queue stats = %+v", got)
	}
	commit(t, s, func(b *store.Batch) {
		for seq := uint64(1); seq <= 10; seq++ {
			b.Dequeue("a", seq)
		}
	})
	if got, want := sessions(t, s)["a"].Queue, (store.QueueStats{LastSeq: 10}); got != want {
		t.Fatalf("drained queue stats = %+v, want %+v", got, want)
	}
	if err := tryCommit(s, func(b *store.Batch) { b.Enqueue("a", entry(10, 1)) }); err == nil {
		t.Fatal("enqueue at a drained LastSeq succeeded")
	}
	commit(t, s, func(b *store.Batch) { b.PutMessage(message(11, "p")); b.Enqueue("a", entry(11, 11)) })
	if got := sessions(t, s)["a"].Queue; got.LastSeq != 11 || got.Messages != 1 {
		t.Fatalf("queue stats after refill = %+v", got)
	}
}

func testFanOutStoredOnce(t *testing.T, s store.Store) {
	const n = 20
	ids := make([]string, n)
	for i := range ids {
		ids[i] = string(rune('A' + i))
	}
	m := message(7, "fan-out payload")
	commit(t, s, func(b *store.Batch) {
		for _, id := range ids {
			b.PutSession(session(id))
		}
		b.PutMessage(m)
		for _, id := range ids {
			b.Enqueue(id, entry(1, m.ID))
		}
	})
	if st := s.Stats(); st.Messages != 1 || st.Bytes != m.Size() {
		t.Fatalf("stats = %+v, want 1 message of %d bytes", st, m.Size())
	}
	for id, st := range sessions(t, s) {
		if st.Queue.Messages != 1 || st.Queue.Bytes != m.Size() {
			t.Fatalf("queue of %q = %+v", id, st.Queue)
		}
	}
	for i, id := range ids {
		commit(t, s, func(b *store.Batch) { b.Dequeue(id, 1) })
		st := s.Stats()
		if last := i == n-1; (st.Messages == 0) != last || (st.Bytes == 0) != last {
			t.Fatalf("after %d dequeues stats = %+v", i+1, st)
		}
	}
}

func testUnreferencedMessage(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")); b.PutMessage(message(1, "x")) })
	if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 {
		t.Fatalf("unreferenced message stored: %+v", st)
	}
	if err := tryCommit(s, func(b *store.Batch) { b.Enqueue("a", entry(1, 1)) }); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("enqueue of an unreferenced message from an earlier batch: err = %v", err)
	}
}

func testUpdateEntry(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) {
		b.PutSession(session("a"))
		b.PutMessage(message(1, "x"))
		b.PutMessage(message(2, "y"))
		b.Enqueue("a", entry(1, 1))
		b.Enqueue("a", entry(2, 2))
	})
	steps := []store.QueueEntry{
		{Seq: 1, State: store.Sent, PacketID: 17, QoS: 2, Retain: true},
		{Seq: 1, State: store.Released, PacketID: 17, QoS: 2},
		{Seq: 1, State: store.Queued, PacketID: 0, QoS: 1, MessageID: 2, SubscriptionIDs: []uint32{1}},
	}
	for _, upd := range steps {
		commit(t, s, func(b *store.Batch) { b.UpdateEntry("a", &upd); b.NoSync = true })
		got := readQueue(t, s, "a", 0, 1)[0]
		want := upd
		want.MessageID, want.SubscriptionIDs = 1, entry(1, 1).SubscriptionIDs
		if !reflect.DeepEqual(got.E, want) || got.M.ID != 1 {
			t.Fatalf("after update to %v: entry %+v message %d, want %+v", upd.State, got.E, got.M.ID, want)
		}
	}
	if got := readQueue(t, s, "a", 1, 0); len(got) != 1 || got[0].E.State != store.Queued {
		t.Fatalf("other entry changed: %+v", got)
	}
}

// testSameBatchEntries: later operations of a batch find the entries
// earlier ones appended, in any order.
func testSameBatchEntries(t *testing.T, s store.Store) {
	commit(t, s, func(b *store.Batch) { b.PutSession(session("a")) })
	commit(t, s, func(b *store.Batch) {
		for id := uint64(1); id <= 8; id++ {
			b.PutMessage(message(id, "p"))
			b.Enqueue("a", entry(id, id))
		}
		b.UpdateEntry("a", &store.QueueEntry{Seq: 7, State: store.Sent, PacketID: 7})
		b.UpdateEntry("a", &store.QueueEntry{Seq: 2, State: store.Sent, PacketID: 2}) // backwards
		b.Dequeue("a", 3)
		b.Dequeue("a", 1)
		b.UpdateEntry("a", &store.QueueEntry{Seq: 8, State: store.Sent, PacketID: 8})
		b.Dequeue("a", 8)
	})
	got := readQueue(t, s, "a", 0, 0)
	var desc []string
	for _, it := range got {
		desc = append(desc, fmt.Sprintf("%d:%v:%d", it.E.Seq, it.E.State, it.E.PacketID))
	}
	want := []string{"2:sent:2", "4:queued:0", "5:queued:0", "6:queued:0", "7:sent:7"}
	if !reflect.DeepEqual(desc, want) {
		t.Fatalf("queue = %v, want %v", desc, want)
	}
	for _, bad := range []func(b *store.Batch){
		func(b *store.Batch) {
			b.PutMessage(message(9, "p"))
			b.Enqueue("a", entry(9, 9))
			b.Dequeue("a", 9)
			b.Dequeue("a", 9)
		},
		func(b *store.Batch) {
			b.PutMessage(message(9, "p"))
			b.Enqueue("a", entry(9, 9))
			b.Dequeue("a", 9)
			b.UpdateEntry("a", &store.QueueEntry{Seq: 9, State: store.Sent, PacketID: 9})
		},
		func(b *store.Batch) { b.Dequeue("a", 3) },
	} {
		if err := tryCommit(s, bad); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	}
	if q := sessions(t, s)["a"].Queue; q.Messages != 5 || q.LastSeq != 8 {
		t.Fatalf("queue stats = %+v", q)
	}
}
