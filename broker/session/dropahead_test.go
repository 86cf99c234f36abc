package session

import (
	"slices"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// seqRange is [from, to).
func seqRange(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// An offline queue at its limit drops its oldest entries from entries read
// without their messages, aheadMax at a time, and keeps exactly the newest.
func TestDropOldestOfflineReadsNoMessage(t *testing.T) {
	const limit, total = 50, 550
	f := newFixture(t, 3600, Limits{MaxMessages: limit, MaxBytes: 1 << 20, Policy: DropOldest})
	cr := &countReads{rd: f.st}
	f.s.env.Reader = cr
	for i := range limit {
		f.offerSized("t", i, 20, 1, time.Time{})
	}
	// The first offer that does not fit purges once (ReadQueue, with the
	// messages, as expiry needs them); every drop after reads entries only.
	f.offerSized("t", limit, 20, 1, time.Time{})
	msgReads := cr.n - cr.entries
	for i := limit + 1; i < total; i++ {
		f.offerSized("t", i, 20, 1, time.Time{})
	}
	if f.drops[DropQueueFull] != total-limit {
		t.Fatalf("drops %v", f.drops)
	}
	if got := cr.n - cr.entries; got != msgReads {
		t.Fatalf("%d reads with messages while dropping, want none", got-msgReads)
	}
	// A read finds at most what is committed past the last one: the queue.
	if max := (total-limit)/min(aheadMax, limit) + 1; cr.entries > max {
		t.Fatalf("%d entry reads for %d drops, want at most %d", cr.entries, total-limit, max)
	}
	if st := f.st.Stats(); st.Messages != limit {
		t.Fatalf("store holds %d messages, want %d", st.Messages, limit)
	}
	// What the session holds of its queue in memory: no item, no message.
	if n, a := len(f.s.q.head), f.s.q.pg.ahead.ents; n != 0 || cap(a) > aheadMax {
		t.Fatalf("offline session holds %d items and %d entries ahead", n, cap(a))
	}
	f.attach()
	if got := f.drain()["t"]; !slices.Equal(got, seqRange(total-limit, total)) {
		t.Fatalf("delivered %v", got)
	}
	if st := f.st.Stats(); st.Messages != 0 || f.s.q.msgs != 0 || f.s.q.bytes != 0 {
		t.Fatalf("after the drain: store %d messages, session %d messages %d bytes", st.Messages, f.s.q.msgs, f.s.q.bytes)
	}
}

// A purge that dequeues entries the queue had read ahead to drop makes it
// forget them: DropOldest then drops each survivor once (a second Dequeue
// of a purged entry fails the commit) and keeps the newest.
func TestDropOldestOfflineAfterPurge(t *testing.T) {
	const limit = 20
	f := newFixture(t, 3600, Limits{MaxMessages: limit, MaxBytes: 1 << 20, Policy: DropOldest})
	soon := f.clk.now().Add(10 * time.Second)
	for i := range limit {
		exp := time.Time{}
		if i >= 5 && i <= 10 {
			exp = soon
		}
		f.offerSized("t", i, 20, 1, exp)
	}
	for i := limit; i < limit+3; i++ { // each drops one, read ahead
		f.offerSized("t", i, 20, 1, time.Time{})
	}
	f.clk.add(time.Minute)
	for i := limit + 3; i <= 40; i++ { // the first purges 5..10
		f.offerSized("t", i, 20, 1, time.Time{})
	}
	if f.drops[DropExpired] != 6 || f.drops[DropQueueFull] != 15 {
		t.Fatalf("drops %v", f.drops)
	}
	f.attach()
	if got := f.drain()["t"]; !slices.Equal(got, seqRange(21, 41)) {
		t.Fatalf("delivered %v", got)
	}
}

// Entries inflight from the last connection are never dropped, however
// many reads ahead find only them.
func TestDropOldestOfflinePassesInflight(t *testing.T) {
	const inflight = 2*aheadMax + 10
	f := newFixture(t, 3600, Limits{MaxMessages: inflight + 5, MaxBytes: 1 << 20, Policy: DropOldest})
	if err := f.s.Attach(inflight, func() {}); err != nil {
		t.Fatal(err)
	}
	for i := range inflight {
		f.offerSized("t", i, 20, 1, time.Time{})
	}
	if out := f.next(inflight); len(out) != inflight {
		t.Fatalf("sent %d", len(out))
	}
	f.detach()
	for i := inflight; i < inflight+10; i++ {
		f.offerSized("t", i, 20, 1, time.Time{})
	}
	if f.drops[DropQueueFull] != 5 {
		t.Fatalf("drops %v", f.drops)
	}
	if err := f.s.Attach(2*inflight, func() {}); err != nil {
		t.Fatal(err)
	}
	want := append(seqRange(0, inflight), seqRange(inflight+5, inflight+10)...)
	var b store.Batch
	out, _ := f.s.NextBatch(nil, 2*inflight, nil, &b)
	f.commit(&b)
	var got []int
	for _, o := range out {
		got = append(got, seqOf(o))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %v, want %v", got, want)
	}
}

// A connection in between reads the queue from its start and acknowledges
// entries the queue had read ahead to drop: the next drops, offline again,
// read afresh and drop each remaining entry once.
func TestDropOldestOfflineAfterAConnection(t *testing.T) {
	const limit = 20
	f := newFixture(t, 3600, Limits{MaxMessages: limit, MaxBytes: 1 << 20, Policy: DropOldest})
	for i := range limit + 3 { // the last three drop 0..2, read ahead
		f.offerSized("t", i, 20, 1, time.Time{})
	}
	if err := f.s.Attach(5, func() {}); err != nil {
		t.Fatal(err)
	}
	out := f.next(5)
	var b store.Batch
	for _, o := range out {
		if err := f.s.Puback(o.PacketID, &b); err != nil {
			t.Fatal(err)
		}
	}
	f.commit(&b)
	if got := len(out); got != 5 || seqOf(out[0]) != 3 {
		t.Fatalf("delivered %d from %d", got, seqOf(out[0]))
	}
	f.detach()
	for i := limit + 3; i < limit+13; i++ { // five fit, five drop 8..12
		f.offerSized("t", i, 20, 1, time.Time{})
	}
	if f.drops[DropQueueFull] != 8 {
		t.Fatalf("drops %v", f.drops)
	}
	f.attach()
	if got := f.drain()["t"]; !slices.Equal(got, seqRange(13, limit+13)) {
		t.Fatalf("delivered %v", got)
	}
}
