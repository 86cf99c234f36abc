package session

import (
	"fmt"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
)

// offerHeld offers a message without committing its batch, which it
// returns.
func (f *fixture) offerHeld(topic string, n int, exp time.Time) (router.Result, *store.Batch) {
	f.t.Helper()
	f.ids++
	m := &store.Message{ID: f.ids, Topic: topic, Payload: []byte(fmt.Sprintf("%d/", n)), QoS: 1,
		PublishedAt: f.clk.now(), ExpiresAt: exp}
	b := &store.Batch{}
	b.PutMessage(m)
	return f.s.Offer(m, router.Delivery{QoS: 1}, b), b
}

// drain delivers and acknowledges everything, returning the payload
// sequence numbers per topic.
func (f *fixture) drain() map[string][]int {
	f.t.Helper()
	got := map[string][]int{}
	deadline := time.Now().Add(10 * time.Second)
	for {
		if time.Now().After(deadline) {
			f.t.Fatal("drain stalled")
		}
		out := f.next(1000)
		if len(out) == 0 {
			return got
		}
		var b store.Batch
		for _, o := range out {
			got[o.Msg.Topic] = append(got[o.Msg.Topic], seqOf(o))
			if err := f.s.Puback(o.PacketID, &b); err != nil {
				f.t.Fatal(err)
			}
		}
		f.commit(&b)
	}
}

// A queue full of expired messages accepts new ones under RejectPublish
// and DropNewest, and the expired ones are counted as such: offline
// persistent sessions (queue in the store, read in bounded windows),
// online ones and non-persistent ones (queue in memory). The first queued
// message never expires: expired entries are purged from within the queue,
// not only at its head.
func TestExpiredMessagesStopCountingAgainstLimits(t *testing.T) {
	const limit = 1000
	for _, pol := range []Policy{RejectPublish, DropNewest} {
		for _, mode := range []string{"offline", "online", "memory"} {
			t.Run(fmt.Sprint(pol, "/", mode), func(t *testing.T) {
				expiry := uint32(3600)
				if mode == "memory" {
					expiry = 0
				}
				f := newFixture(t, expiry, Limits{MaxMessages: limit, MaxBytes: 1 << 30, Policy: pol})
				if mode != "offline" {
					_ = f.s.Attach(10, func() {})
				}
				f.offerSized("keep", 0, 100, 1, time.Time{})
				soon := f.clk.now().Add(time.Minute)
				for i := range limit - 1 {
					f.offerSized("old", i, 100, 1, soon)
				}
				if r := f.offerSized("new", 0, 100, 1, time.Time{}); r.Dropped == "" {
					t.Fatal("a full queue took a message before anything expired")
				}
				dropsBefore := f.drops[DropQuotaRejected] + f.drops[DropQueueFull]
				f.clk.add(2 * time.Minute)
				for i := 1; i < limit; i++ {
					if r := f.offerSized("new", i-1, 100, 1, time.Time{}); r.Dropped != "" {
						t.Fatalf("message %d dropped (%s); drops %v", i, r.Dropped, f.drops)
					}
				}
				if f.drops[DropExpired] != limit-1 {
					t.Fatalf("expired drops %d, want %d (%v)", f.drops[DropExpired], limit-1, f.drops)
				}
				if d := f.drops[DropQuotaRejected] + f.drops[DropQueueFull]; d != dropsBefore {
					t.Fatalf("live messages dropped: %v", f.drops)
				}
				if i := f.s.Info(); i.QueuedMessages != limit {
					t.Fatalf("queued %d", i.QueuedMessages)
				}
				if mode == "offline" {
					_ = f.s.Attach(10, func() {})
				}
				got := f.drain()
				if len(got["old"]) != 0 || len(got["keep"]) != 1 || len(got["new"]) != limit-1 {
					t.Fatalf("delivered keep=%d old=%d new=%d", len(got["keep"]), len(got["old"]), len(got["new"]))
				}
				for i, n := range got["new"] {
					if n != i {
						t.Fatalf("new message %d delivered as %d", n, i)
					}
				}
			})
		}
	}
}

// An entry purged past the head stays in the store until the purging
// batch commits: a refill before that must pass over it, and nothing is
// dequeued twice.
func TestPurgedEntryNotReadBackBeforeCommit(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20, Policy: RejectPublish})
	soon := f.clk.now().Add(time.Minute)
	f.offerSized("keep", 0, 10, 1, time.Time{})
	for i := range 99 {
		f.offerSized("old", i, 10, 1, soon)
	}
	f.clk.add(2 * time.Minute)
	r, b := f.offerHeld("new", 0, time.Time{})
	if r.Dropped != "" || f.drops[DropExpired] != 99 {
		t.Fatalf("offer %+v, drops %v", r, f.drops)
	}
	_ = f.s.Attach(10, func() {})
	var sb store.Batch
	out, _ := f.s.NextBatch(nil, 100, nil, &sb)
	if len(out) != 1 || out[0].Msg.Topic != "keep" {
		t.Fatalf("sent %v before the purge committed", payloads(out))
	}
	f.commit(b) // the purge and the new message
	f.s.Settle(r.Settle, true)
	if pg := f.s.q.pg; pg == nil || len(pg.skip) != 0 {
		t.Fatalf("purge state after the purge committed: %+v (want no skipped entries)", pg)
	}
	f.commit(&sb)
	if got := payloads(f.next(100)); len(got) != 1 || got[0] != "0/" {
		t.Fatalf("then sent %v", got)
	}
}

// Once a purge found nothing expired, no further purge reads the store
// until the earliest surviving expiry.
func TestPurgeWaitsForEarliestExpiry(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 10, MaxBytes: 1 << 20, Policy: RejectPublish})
	cr := &countReads{rd: f.st}
	f.s.env.Reader = cr
	later := f.clk.now().Add(time.Hour)
	for i := range 10 {
		f.offerSized("t", i, 10, 1, later)
	}
	f.offerSized("t", 10, 10, 1, time.Time{}) // rejected after one purge round
	reads := cr.n
	for i := range 5 {
		if r := f.offerSized("t", 11+i, 10, 1, time.Time{}); !r.Rejected {
			t.Fatalf("offer %+v", r)
		}
	}
	if cr.n != reads {
		t.Fatalf("%d store reads for offers before any expiry", cr.n-reads)
	}
	f.clk.add(time.Hour)
	if r := f.offerSized("t", 20, 10, 1, time.Time{}); r.Dropped != "" {
		t.Fatalf("offer after expiry %+v", r)
	}
	if f.drops[DropExpired] != 10 {
		t.Fatalf("drops %v", f.drops)
	}
}

// countReads counts the store reads of a session: n all of them, entries
// those without messages (ReadQueueEntries).
type countReads struct {
	rd         Reader
	n, entries int
}

func (c *countReads) ReadQueue(id string, after uint64, limit int, fn func(store.QueueEntry, *store.Message) bool) error {
	c.n++
	return c.rd.ReadQueue(id, after, limit, fn)
}

func (c *countReads) ReadQueueEntries(id string, after uint64, limit int, fn func(store.QueueEntry, int64) bool) error {
	c.n++
	c.entries++
	return c.rd.ReadQueueEntries(id, after, limit, fn)
}
