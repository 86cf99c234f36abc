package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

func mustCommit(t testing.TB, s store.Store, b *store.Batch) {
	t.Helper()
	if err := s.Commit(context.Background(), b); err != nil {
		t.Fatal(err)
	}
}

// TestCacheNoStaleEntries: queue reads racing with the commits that update
// and dequeue the entries they read never leave a removed entry in the
// entry cache: dequeuing it again fails, and the counts add up on reopen.
func TestCacheNoStaleEntries(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	// Every read walks the whole queue while commits shrink it: the cost
	// grows with the square of n (about 50 s at 3000 under -race).
	n := uint64(3000)
	if testing.Short() {
		n = 500
	}
	b := &store.Batch{}
	b.PutSession(&store.Session{ClientID: "c", CreatedAt: time.Unix(1, 0)})
	for seq := uint64(1); seq <= n; seq++ {
		m := &store.Message{ID: s.NextMessageID(), Topic: "t", Payload: []byte("p")}
		b.PutMessage(m)
		b.Enqueue("c", &store.QueueEntry{Seq: seq, MessageID: m.ID, QoS: 1})
	}
	mustCommit(t, s, b)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := s.ReadQueue("c", 0, 0, func(store.QueueEntry, *store.Message) bool { return true }); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	for seq := uint64(1); seq <= n; seq++ {
		b := &store.Batch{NoSync: true}
		b.UpdateEntry("c", &store.QueueEntry{Seq: seq, QoS: 1, State: store.Sent, PacketID: uint16(seq)})
		mustCommit(t, s, b)
		b = &store.Batch{NoSync: true}
		b.Dequeue("c", seq)
		mustCommit(t, s, b)
	}
	close(stop)
	wg.Wait()
	for seq := uint64(1); seq <= n; seq++ {
		b := &store.Batch{}
		b.Dequeue("c", seq)
		if err := s.Commit(context.Background(), b); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("dequeue %d again: %v", seq, err)
		}
	}
	if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	defer s.Close()
	if st := s.Stats(); st.Messages != 0 {
		t.Fatalf("after reopen: %+v", st)
	}
}

// TestCacheMatchesModel runs random operations, interleaved with queue
// reads that fill the caches, against the store and memstore, and
// compares what they read back, also after a reopen.
func TestCacheMatchesModel(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, Options{})
	model := memstore.New()
	rng := rand.New(rand.NewPCG(1, 2))
	clients := []string{"a", "b", "c", "d"}
	lastSeq := map[string]uint64{}
	both := func(b *store.Batch) {
		t.Helper()
		errS := s.Commit(context.Background(), b)
		errM := model.Commit(context.Background(), b)
		if (errS == nil) != (errM == nil) {
			t.Fatalf("commit %v: store %v, model %v", b.Ops, errS, errM)
		}
	}
	for _, c := range clients {
		b := &store.Batch{}
		b.PutSession(&store.Session{ClientID: c, CreatedAt: time.Unix(1, 0)})
		both(b)
	}
	compare := func(s store.Store) {
		t.Helper()
		for _, c := range clients {
			var got, want []string
			read := func(st store.Store, out *[]string) {
				if err := st.ReadQueue(c, 0, 0, func(e store.QueueEntry, m *store.Message) bool {
					*out = append(*out, fmt.Sprintf("%d:%d:%v:%d:%d", e.Seq, e.MessageID, e.State, e.PacketID, len(m.Payload)))
					return true
				}); err != nil {
					t.Fatal(err)
				}
			}
			read(s, &got)
			read(model, &want)
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Fatalf("queue %s:\n got %v\nwant %v", c, got, want)
			}
			// A read that starts inside a run.
			after, limit := rng.Uint64N(lastSeq[c]+1), rng.IntN(200)
			var gotPart, wantPart []uint64
			for st, out := range map[store.Store]*[]uint64{s: &gotPart, model: &wantPart} {
				if err := st.ReadQueue(c, after, limit, func(e store.QueueEntry, _ *store.Message) bool {
					*out = append(*out, e.Seq)
					return true
				}); err != nil {
					t.Fatal(err)
				}
			}
			if fmt.Sprint(gotPart) != fmt.Sprint(wantPart) {
				t.Fatalf("queue %s after %d limit %d:\n got %v\nwant %v", c, after, limit, gotPart, wantPart)
			}
		}
		if gs, ws := s.Stats(), model.Stats(); gs != ws {
			t.Fatalf("stats %+v, model %+v", gs, ws)
		}
	}
	rounds := 3000
	if testing.Short() {
		rounds = 800 // half of them fsync
	}
	for i := range rounds {
		b := &store.Batch{NoSync: rng.IntN(2) == 0}
		for range 1 + rng.IntN(4) {
			c := clients[rng.IntN(len(clients))]
			switch rng.IntN(6) {
			case 0, 1:
				// Sometimes more entries than fit one run.
				n := 1 + rng.IntN(3)
				if rng.IntN(40) == 0 {
					n = 2*maxRunEntries + rng.IntN(50)
				}
				for range n {
					id := s.NextMessageID()
					model.NextMessageID()
					b.PutMessage(&store.Message{ID: id, Topic: "t", Payload: make([]byte, rng.IntN(5))})
					// One target (stored inline) or several (stored once).
					from, k := rng.IntN(len(clients)), 1
					if rng.IntN(2) == 0 {
						k += rng.IntN(len(clients) - from)
					}
					for _, c2 := range clients[from : from+k] {
						lastSeq[c2]++
						b.Enqueue(c2, &store.QueueEntry{Seq: lastSeq[c2], MessageID: id, QoS: 1})
					}
				}
			case 2:
				b.UpdateEntry(c, &store.QueueEntry{Seq: 1 + rng.Uint64N(lastSeq[c]+1), QoS: 1, State: store.Sent, PacketID: uint16(rng.IntN(100))})
			case 3, 4:
				b.Dequeue(c, 1+rng.Uint64N(lastSeq[c]+1))
			case 5:
				if rng.IntN(10) == 0 {
					b.DeleteSession(c)
					b.PutSession(&store.Session{ClientID: c, CreatedAt: time.Unix(1, 0)})
					lastSeq[c] = 0
				}
			}
		}
		both(b)
		if i%7 == 0 {
			compare(s)
		}
	}
	compare(s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir, Options{})
	defer s.Close()
	compare(s)
}
