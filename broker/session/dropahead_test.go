package session

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
	"unsafe"

	"github.com/bollard-io/bollard/broker/router"
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

// A random schedule of publishes into a queue at its limit (DropOldest),
// some with an expiry, their commits held back and done in submission
// order, the clock moving on (purges), and connections coming and going
// with deliveries and acknowledgements: every commit succeeds (dropping
// an entry twice, or one already gone, fails it), the session's counters
// match its queue in the store whenever every commit is done, the queue
// never settles above its limit, and a last connection gets every entry
// left in publish order, ending with the newest unexpired message.
func TestDropOldestRandomSchedule(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { dropOldestSchedule(t, seed) })
	}
}

func dropOldestSchedule(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	limit := int64(3 + rng.IntN(40))
	f := newFixture(t, 3600, Limits{MaxMessages: limit, MaxBytes: 1 << 24, Policy: DropOldest})
	type held struct {
		b   *store.Batch
		seq uint64
	}
	var (
		unsettled []held // submitted, not committed yet
		online    bool
		inflight  []Outgoing
		n         int
		acked     = map[int]bool{}
		// newest is the newest message queued; unless it may expire, the
		// last connection gets it (it is dropped only when every older
		// entry is inflight, and then it is not queued).
		newest, newestExpires = 0, false
	)
	commitNext := func() {
		h := unsettled[0]
		unsettled = unsettled[1:]
		f.commitOnly(h.b)
		if h.seq != 0 {
			f.s.Settle(h.seq, true)
		}
	}
	settleAll := func() {
		for len(unsettled) > 0 {
			commitNext()
		}
	}
	// stored counts the session's entries in the store and their bytes.
	stored := func() (msgs, bytes int64) {
		if err := f.st.ReadQueueEntries("c", 0, 0, func(_ store.QueueEntry, size int64) bool {
			msgs, bytes = msgs+1, bytes+size
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return msgs, bytes
	}
	check := func(what string) {
		t.Helper()
		settleAll()
		d := f.s.Depth()
		if msgs, bytes := stored(); d.Messages != msgs || d.Bytes != bytes {
			t.Fatalf("seed %d, %s: session counts %d messages %d bytes, the store %d and %d", seed, what, d.Messages, d.Bytes, msgs, bytes)
		}
		if d.Messages > limit {
			t.Fatalf("seed %d, %s: %d messages queued, limit %d", seed, what, d.Messages, limit)
		}
	}
	for step := range 300 {
		switch k := rng.IntN(20); {
		case k < 9: // a publish, its commit held back
			n++
			f.ids++
			m := &store.Message{ID: f.ids, Topic: "t", Payload: []byte(fmt.Sprintf("%d/", n)), QoS: 1, PublishedAt: f.clk.now()}
			if rng.IntN(4) == 0 {
				m.ExpiresAt = f.clk.now().Add(time.Duration(1+rng.IntN(20)) * time.Second)
			}
			b := new(store.Batch)
			b.PutMessage(m)
			r := f.s.Offer(m, router.Delivery{QoS: 1}, b)
			if r.Dropped == "" {
				newest, newestExpires = n, !m.ExpiresAt.IsZero()
			}
			if r.Early {
				f.s.Deliverable(r.Settle)
			}
			unsettled = append(unsettled, held{b, r.Settle})
		case k < 12 && len(unsettled) > 0:
			commitNext()
		case k < 13:
			f.clk.add(time.Duration(rng.IntN(10)) * time.Second)
		case k < 14: // a connection comes or goes
			settleAll()
			if online {
				f.detach()
				inflight = nil
			} else if err := f.s.Attach(1+rng.IntN(8), func() {}); err != nil {
				t.Fatal(err)
			}
			online = !online
			check(fmt.Sprintf("step %d, online %v", step, online))
		case k < 17 && online: // the writer
			settleAll()
			var wb store.Batch
			out, _ := f.s.NextBatch(nil, 10, nil, &wb)
			f.commit(&wb)
			inflight = append(inflight, out...)
		case k < 20 && online && len(inflight) > 0: // an acknowledgement
			settleAll()
			i := rng.IntN(len(inflight))
			var ab store.Batch
			if err := f.s.Puback(inflight[i].PacketID, &ab); err != nil {
				t.Fatal(err)
			}
			acked[seqOf(inflight[i])] = true
			inflight = append(inflight[:i], inflight[i+1:]...)
			f.commit(&ab)
		}
	}
	if online {
		f.detach() // writes the Dequeues acknowledgements left for the next batch
	}
	check("the end")
	want := f.s.Depth().Messages
	if err := f.s.Attach(1000, func() {}); err != nil {
		t.Fatal(err)
	}
	expired := f.drops[DropExpired]
	var wb store.Batch
	out, _ := f.s.NextBatch(nil, 1000, nil, &wb)
	if expired = f.drops[DropExpired] - expired; int64(len(out)+expired) != want {
		t.Fatalf("seed %d: %d queued, the last connection got %d (and dropped %d expired)", seed, want, len(out), expired)
	}
	prev, got := 0, map[int]bool{}
	for _, o := range out {
		s := seqOf(o)
		if s <= prev {
			t.Fatalf("seed %d: %d after %d", seed, s, prev)
		}
		prev, got[s] = s, true
	}
	if newest > 0 && !newestExpires && !acked[newest] && !got[newest] {
		t.Fatalf("seed %d: the newest message %d was not kept (last delivered %d)", seed, newest, prev)
	}
}

// entriesReader serves ReadQueueEntries from a fixed list.
type entriesReader struct {
	Reader
	ents []store.QueueSize
}

func (r *entriesReader) ReadQueueEntries(_ string, after uint64, limit int, fn func(store.QueueEntry, int64) bool) error {
	n := 0
	for _, e := range r.ents {
		if e.Entry.Seq <= after {
			continue
		}
		if n++; (limit > 0 && n > limit) || !fn(e.Entry, e.Size) {
			break
		}
	}
	return nil
}

// An entry read ahead takes 8 bytes; one whose Seq is 2^32 past the first
// of its read, or whose size does not fit 32 bits, ends the read, and one
// that comes first makes readAhead give up, so that DropOldest refills the
// head instead.
func TestReadAheadCompactEntries(t *testing.T) {
	if got := unsafe.Sizeof(aheadEnt{}) * aheadMax; got != 1024 {
		t.Fatalf("ahead holds %d bytes, want 1 KiB", got)
	}
	f := newFixture(t, 3600, Limits{MaxMessages: 10, Policy: DropOldest})
	far := uint64(1)<<32 + 10
	queued := func(seq uint64, size int64) store.QueueSize {
		return store.QueueSize{Entry: store.QueueEntry{Seq: seq, State: store.Queued}, Size: size}
	}
	f.s.env.Reader = &entriesReader{Reader: f.st, ents: []store.QueueSize{
		queued(1, 10), queued(2, 20), queued(far, 30), queued(far+1, 5<<30)}}
	q := &f.s.q
	q.lastSeq, q.msgs, q.bytes = far+1, 4, 60+5<<30
	var b store.Batch
	var dropped []uint64
	for f.s.dropAhead(DropQueueFull, &b) {
		dropped = append(dropped, b.Ops[len(b.Ops)-1].Seq)
	}
	if !slices.Equal(dropped, []uint64{1, 2, far}) || q.loadedSeq != far || q.msgs != 1 || q.bytes != 5<<30 {
		t.Fatalf("dropped %v, loadedSeq %d, %d messages %d bytes left", dropped, q.loadedSeq, q.msgs, q.bytes)
	}
}
