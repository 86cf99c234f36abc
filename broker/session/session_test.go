package session

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fixture is a session over a memstore, committing every batch at once.
type fixture struct {
	t     *testing.T
	st    *memstore.Store
	clk   *clock
	s     *Session
	drops map[string]int
	ids   uint64
}

func newFixture(t *testing.T, expiry uint32, lim Limits) *fixture {
	f := &fixture{t: t, st: memstore.New(), clk: &clock{t: time.Unix(1_000_000, 0)}, drops: map[string]int{}}
	rec := store.Session{ClientID: "c", ExpiryInterval: expiry, CreatedAt: f.clk.now()}
	f.s = New(rec, &lim, &Env{Reader: f.st, Now: f.clk.now, Hooks: Hooks{Drop: func(_, reason string, n int) { f.drops[reason] += n }}})
	var b store.Batch
	f.s.Connect(5, expiry, nil, &b)
	f.commit(&b)
	return f
}

func (f *fixture) commit(b *store.Batch) {
	f.t.Helper()
	if b.Len() == 0 {
		return
	}
	f.commitOnly(b)
	// The tests commit one batch at a time: every acknowledgement written
	// so far has been submitted, as the read loop reports.
	f.s.AcksSubmitted()
}

// detach detaches the session and commits its pending Sent marks, as the
// server does when a connection ends.
func (f *fixture) detach() {
	f.t.Helper()
	var b store.Batch
	f.s.DetachMarks(&b)
	f.commit(&b)
}

// offer queues a QoS qos message and commits it (unless hold).
func (f *fixture) offer(payload string, qos byte, hold bool) router.Result {
	f.t.Helper()
	f.ids++
	m := &store.Message{ID: f.ids, Topic: "t", Payload: []byte(payload), QoS: qos, PublishedAt: f.clk.now()}
	if hold {
		var b store.Batch
		b.PutMessage(m)
		return f.s.Offer(m, router.Delivery{QoS: qos}, &b)
	}
	return f.offerMessage(m)
}

// offerMessage offers m at its QoS, commits its batch and settles it.
func (f *fixture) offerMessage(m *store.Message) router.Result {
	f.t.Helper()
	var b store.Batch
	b.PutMessage(m)
	r := f.s.Offer(m, router.Delivery{QoS: m.QoS}, &b)
	if r.Stored {
		f.commit(&b)
	}
	if r.Settle != 0 {
		f.s.Settle(r.Settle, true)
	}
	return r
}

func (f *fixture) next(max int) []Outgoing {
	f.t.Helper()
	var b store.Batch
	out, _ := f.s.NextBatch(nil, max, nil, &b)
	f.commit(&b)
	return out
}

func payloads(out []Outgoing) []string {
	var s []string
	for _, o := range out {
		if o.Msg != nil {
			s = append(s, string(o.Msg.Payload))
		}
	}
	return s
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestInflightWindowAndPacketIDs(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	if err := f.s.Attach(2, func() {}); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		f.offer(strconv.Itoa(i), 1, false)
	}
	out := f.next(10)
	if !equal(payloads(out), []string{"0", "1"}) {
		t.Fatalf("first window %v", payloads(out))
	}
	if out[0].PacketID == out[1].PacketID || out[0].PacketID == 0 {
		t.Fatalf("packet IDs %d %d", out[0].PacketID, out[1].PacketID)
	}
	if len(f.next(10)) != 0 {
		t.Fatal("window exceeded")
	}
	var b store.Batch
	if err := f.s.Puback(out[0].PacketID, &b); err != nil {
		t.Fatal(err)
	}
	f.commit(&b)
	if err := f.s.Puback(out[0].PacketID, &b); err == nil {
		t.Fatal("second PUBACK for the same ID accepted")
	}
	if got := payloads(f.next(10)); !equal(got, []string{"2"}) {
		t.Fatalf("after one ack %v", got)
	}
	if info := f.s.Info(); info.QueuedMessages != 4 || info.Inflight != 2 {
		t.Fatalf("info %+v", info)
	}
}

func TestUncommittedEntriesWait(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	_ = f.s.Attach(10, func() {})
	r := f.offer("held", 1, true)
	if len(f.next(10)) != 0 {
		t.Fatal("uncommitted message delivered")
	}
	f.s.Settle(r.Settle, false) // its batch failed
	if len(f.next(10)) != 0 || f.s.Info().QueuedMessages != 0 {
		t.Fatal("failed entry not forgotten")
	}
	f.offer("ok", 1, false)
	if got := payloads(f.next(10)); !equal(got, []string{"ok"}) {
		t.Fatalf("got %v", got)
	}
}

func TestResendOnReattach(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	_ = f.s.Attach(10, func() {})
	f.offer("q1", 1, false)
	f.offer("q2", 2, false)
	f.offer("q3", 2, false)
	out := f.next(10)
	var b store.Batch
	if rel, err := f.s.Pubrec(out[2].PacketID, false, &b); err != nil || !rel {
		t.Fatalf("PUBREC: %v %v", rel, err)
	}
	f.commit(&b)
	f.detach()
	f.offer("later", 1, false)
	_ = f.s.Attach(10, func() {})
	again := f.next(10)
	if len(again) != 4 {
		t.Fatalf("got %d packets", len(again))
	}
	for i := range 2 {
		if !again[i].Dup || again[i].PacketID != out[i].PacketID {
			t.Fatalf("resend %d: %+v", i, again[i])
		}
	}
	if !again[2].Pubrel || again[2].PacketID != out[2].PacketID {
		t.Fatalf("expected PUBREL resend, got %+v", again[2])
	}
	if again[3].Dup || string(again[3].Msg.Payload) != "later" {
		t.Fatalf("new message %+v", again[3])
	}
}

func TestDropOldestRefillsFromStore(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 20, MaxBytes: 1 << 20, Policy: DropOldest})
	for i := range 25 { // offline: the head holds only offlineHead entries
		f.offer(strconv.Itoa(i), 1, false)
	}
	if f.drops[DropQueueFull] != 5 {
		t.Fatalf("drops %v", f.drops)
	}
	_ = f.s.Attach(100, func() {})
	var got []string
	for {
		out := f.next(100)
		if len(out) == 0 {
			break
		}
		var b store.Batch
		for _, o := range out {
			got = append(got, string(o.Msg.Payload))
			_ = f.s.Puback(o.PacketID, &b)
		}
		f.commit(&b)
	}
	want := []string{}
	for i := 5; i < 25; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if !equal(got, want) {
		t.Fatalf("got %v", got)
	}
	if st := f.st.Stats(); st.Messages != 0 {
		t.Fatalf("store still holds %d messages", st.Messages)
	}
}

func TestRejectAndQoS0Offline(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 1, MaxBytes: 1 << 20, Policy: RejectPublish})
	f.offer("a", 1, false)
	if r := f.offer("b", 1, false); !r.Rejected || r.Dropped != DropQuotaRejected {
		t.Fatalf("result %+v", r)
	}
	if r := f.offer("c", 0, false); r.Dropped != DropQoS0Offline {
		t.Fatalf("QoS 0 offline %+v", r)
	}
}

func TestMessageExpiryOnDelivery(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 10, MaxBytes: 1 << 20})
	f.ids++
	m := &store.Message{ID: f.ids, Topic: "t", Payload: []byte("x"), QoS: 1, ExpiresAt: f.clk.now().Add(time.Second)}
	var b store.Batch
	b.PutMessage(m)
	r := f.s.Offer(m, router.Delivery{QoS: 1}, &b)
	f.commit(&b)
	f.s.Settle(r.Settle, true)
	f.clk.add(2 * time.Second)
	_ = f.s.Attach(10, func() {})
	if out := f.next(10); len(out) != 0 {
		t.Fatalf("expired message delivered: %+v", out)
	}
	if f.drops[DropExpired] != 1 || f.s.Info().QueuedMessages != 0 {
		t.Fatalf("drops %v info %+v", f.drops, f.s.Info())
	}
}

func TestWillAndExpiryTimes(t *testing.T) {
	f := newFixture(t, 100, Limits{MaxMessages: 10, MaxBytes: 1 << 20})
	var b store.Batch
	f.s.Connect(5, 100, &store.Will{Message: store.Message{Topic: "w"}, DelayInterval: 300}, &b)
	if !f.s.WillDueAt().IsZero() || !f.s.ExpiresAt().IsZero() {
		t.Fatal("online session has deadlines")
	}
	f.s.Disconnected(true, &b)
	now := f.clk.now()
	if got := f.s.WillDueAt(); !got.Equal(now.Add(100 * time.Second)) {
		t.Fatalf("will due %v: the will delay is capped by the session expiry", got)
	}
	if got := f.s.ExpiresAt(); !got.Equal(now.Add(100 * time.Second)) {
		t.Fatalf("expires %v", got)
	}
	if w := f.s.TakeWill(&b); w == nil || f.s.TakeWill(&b) != nil {
		t.Fatal("TakeWill")
	}
}

func TestInboundQoS2(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 10, MaxBytes: 1 << 20})
	var b store.Batch
	if f.s.BeginInbound(7, &b) {
		t.Fatal("first PUBLISH reported as duplicate")
	}
	if !f.s.BeginInbound(7, &b) {
		t.Fatal("resent PUBLISH not detected")
	}
	if !f.s.ReleaseInbound(7, &b) || f.s.ReleaseInbound(7, &b) {
		t.Fatal("PUBREL handling")
	}
	if f.s.BeginInbound(7, &b) {
		t.Fatal("packet ID reuse after PUBCOMP treated as duplicate")
	}
}

// A long backlog streams through a bounded head: the session never holds
// more than its head window of queued messages in memory.
func TestBacklogStreamsInBoundedWindow(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 1 << 20, MaxBytes: 1 << 30})
	const n = 3000
	for i := range n {
		f.offer(strconv.Itoa(i), 1, false)
	}
	_ = f.s.Attach(10, func() {})
	got := 0
	for got < n {
		out := f.next(1000)
		if len(out) == 0 {
			t.Fatalf("stalled after %d", got)
		}
		if h := len(f.s.q.head); h > maxHead || h > f.s.headCap() {
			t.Fatalf("head holds %d messages", h)
		}
		var b store.Batch
		for _, o := range out {
			if string(o.Msg.Payload) != strconv.Itoa(got) {
				t.Fatalf("got %q at %d", o.Msg.Payload, got)
			}
			got++
			_ = f.s.Puback(o.PacketID, &b)
		}
		f.commit(&b)
		// New messages keep their place behind the backlog.
		if got == 100 {
			f.offer("tail", 1, false)
		}
	}
	if out := f.next(10); len(out) != 1 || string(out[0].Msg.Payload) != "tail" {
		t.Fatalf("tail %v", payloads(out))
	}
}

func TestNonPersistentTakeoverResends(t *testing.T) {
	f := newFixture(t, 0, Limits{MaxMessages: 10, MaxBytes: 1 << 20})
	_ = f.s.Attach(10, func() {})
	f.offer("a", 1, false)
	out := f.next(10)
	f.detach()
	_ = f.s.Attach(10, func() {})
	again := f.next(10)
	if len(again) != 1 || !again[0].Dup || again[0].PacketID != out[0].PacketID {
		t.Fatalf("resend %+v", again)
	}
}

// DropOldest skips entries still inflight from the last connection, however
// many there are, and drops the oldest queued ones.
func TestDropOldestSkipsInflight(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 45, MaxBytes: 1 << 20, Policy: DropOldest})
	_ = f.s.Attach(40, func() {})
	for i := range 40 {
		f.offer(strconv.Itoa(i), 1, false)
	}
	if out := f.next(100); len(out) != 40 {
		t.Fatalf("sent %d", len(out))
	}
	f.detach()
	for i := 40; i < 50; i++ {
		f.offer(strconv.Itoa(i), 1, false)
	}
	if f.drops[DropQueueFull] != 5 {
		t.Fatalf("drops %v", f.drops)
	}
	_ = f.s.Attach(100, func() {})
	out := f.next(100)
	got := payloads(out)
	if len(got) != 45 || got[0] != "0" || !out[0].Dup || got[40] != "45" || got[44] != "49" {
		t.Fatalf("got %v", got)
	}
}

func TestKeepInboundAfterFailedRelease(t *testing.T) {
	f := newFixture(t, 60, Limits{})
	var b store.Batch
	if f.s.BeginInbound(9, &b) {
		t.Fatal("new packet identifier reported as duplicate")
	}
	var rel store.Batch
	if !f.s.ReleaseInbound(9, &rel) {
		t.Fatal("release of a known identifier failed")
	}
	f.s.KeepInbound(9) // the release batch did not commit
	if !f.s.BeginInbound(9, &store.Batch{}) {
		t.Fatal("identifier not awaiting PUBREL after KeepInbound")
	}
}

// QoS 1 Sent marks are written lazily: not for a message acknowledged in
// time, by NextBatch once markDelay passed, and by DetachMarks for the
// rest.
func TestLazySentMarks(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	_ = f.s.Attach(10, func() {})
	for i := range 3 {
		f.offer(strconv.Itoa(i), 1, false)
	}
	var b store.Batch
	out, _ := f.s.NextBatch(nil, 10, nil, &b)
	if len(out) != 3 || b.Len() != 0 {
		t.Fatalf("sent %d, batch %d ops", len(out), b.Len())
	}
	if err := f.s.Puback(out[0].PacketID, &b); err != nil || b.Len() != 1 || b.Ops[0].Kind != store.OpDequeue {
		t.Fatalf("PUBACK: %v %+v", err, b.Ops)
	}
	f.commit(&b)
	f.clk.add(markDelay)
	b = store.Batch{}
	if out2, _ := f.s.NextBatch(nil, 10, nil, &b); len(out2) != 0 || b.Len() != 2 || b.Ops[0].Kind != store.OpUpdateEntry {
		t.Fatalf("aged marks: sent %d, ops %+v", len(out2), b.Ops)
	}
	f.commit(&b)
	f.offer("3", 1, false)
	b = store.Batch{}
	if out2, _ := f.s.NextBatch(nil, 10, nil, &b); len(out2) != 1 || b.Len() != 0 {
		t.Fatalf("sent %d, ops %+v", len(out2), b.Ops)
	}
	f.detach()
	_ = f.s.Attach(10, func() {})
	again := f.next(10)
	if len(again) != 3 {
		t.Fatalf("resent %d", len(again))
	}
	for i, o := range again {
		if !o.Dup || o.PacketID != out[0].PacketID+uint16(i)+1 {
			t.Fatalf("resend %d: %+v", i, o)
		}
	}
}

// A QoS 2 delivery's Sent mark is made durable before its PUBLISH goes
// out; the lazy marks of the QoS 1 deliveries before it go into the same
// batch. Otherwise a crash (or a cluster leader's loss of its term) leaves
// the store with a Queued entry before a Sent one, and the next Attach,
// which reads the inflight prefix, stopped at the Queued entry: the QoS 2
// message was never sent again (lost, or delivered late and out of order
// once the entries before it were gone and the client reconnected).
func TestQoS2MarkCarriesEarlierLazyMarks(t *testing.T) {
	f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
	_ = f.s.Attach(10, func() {})
	f.offer("a", 1, false)
	f.offer("b", 2, false)
	f.offer("c", 1, false)
	var b store.Batch
	out, wait := f.s.NextBatch(nil, 10, nil, &b)
	if len(out) != 3 || !wait {
		t.Fatalf("sent %d, wait %v", len(out), wait)
	}
	f.commit(&b) // durable before the PUBLISHes go out
	// The connection ends without its pending marks being written (the
	// process died), and the client comes back.
	f.s.Detach()
	_ = f.s.Attach(10, func() {})
	again := f.next(10)
	if got := payloads(again); !equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("after the crash the session sent %v, want a, b and c again", got)
	}
	for i, o := range again {
		if !o.Dup || o.PacketID != out[i].PacketID {
			t.Fatalf("resend %d: %+v, want DUP with packet identifier %d", i, o, out[i].PacketID)
		}
	}
}

// A Sent mark that NextBatch writes reaches the store when the writer
// submits its batch, after NextBatch returned; an acknowledgement read
// meanwhile must not Dequeue the entry ahead of it, or the store refuses
// the mark's batch (UpdateEntry of an entry gone) and the connection ends.
// The Dequeue is deferred to the writer's next batch. Both ways a mark is
// written: with a QoS 2 delivery, and once markDelay passed.
func TestAckDuringUnsubmittedMark(t *testing.T) {
	for _, aged := range []bool{false, true} {
		t.Run(fmt.Sprintf("aged=%v", aged), func(t *testing.T) {
			f := newFixture(t, 3600, Limits{MaxMessages: 100, MaxBytes: 1 << 20})
			_ = f.s.Attach(10, func() {})
			f.offer("a", 1, false)
			var wb store.Batch
			out, _ := f.s.NextBatch(nil, 10, nil, &wb)
			f.commit(&wb)
			if aged {
				f.clk.add(markDelay)
			} else {
				f.offer("b", 2, false)
			}
			wb = store.Batch{}
			f.s.NextBatch(nil, 10, nil, &wb) // marks a; not submitted yet
			if !hasOp(wb, store.OpUpdateEntry, out[0].PacketID) {
				t.Fatalf("the writer's batch does not mark a: %+v", wb.Ops)
			}
			var ack store.Batch
			if err := f.s.Puback(out[0].PacketID, &ack); err != nil {
				t.Fatal(err)
			}
			f.commit(&ack) // the reader's batch goes first
			if err := f.st.Commit(context.Background(), &wb); err != nil {
				t.Fatalf("the writer's batch after the acknowledgement: %v", err)
			}
			wb = store.Batch{}
			f.s.NextBatch(nil, 10, nil, &wb)
			f.commit(&wb) // the deferred Dequeue
			f.detach()
			_ = f.s.Attach(10, func() {})
			again := f.next(10)
			for _, o := range again {
				if o.Msg != nil && string(o.Msg.Payload) == "a" {
					t.Fatalf("a, acknowledged, was sent again: %+v", again)
				}
			}
			if d := f.s.Depth(); d.Messages != boolInt(!aged) {
				t.Fatalf("queue holds %d messages", d.Messages)
			}
		})
	}
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// hasOp reports whether b holds an operation of kind on the entry
// delivered with packet identifier pid.
func hasOp(b store.Batch, kind store.OpKind, pid uint16) bool {
	for _, op := range b.Ops {
		if op.Kind == kind && op.Entry != nil && op.Entry.PacketID == pid {
			return true
		}
	}
	return false
}

// TestDropOldestKeepsNewestWhatever the commit timing: a publisher that
// pipelines a burst into a full queue has many Enqueues uncommitted at
// once; DropOldest must still keep the newest messages (issue 11: it kept
// the oldest, dropping the new message whenever the oldest entry was not
// committed yet). Batches commit in submission order, lag batches behind
// the offers, as the server's pipelined committer does.
func TestDropOldestKeepsNewestWhateverTheCommitTiming(t *testing.T) {
	const total, limit = 80, 50
	type held struct {
		b *store.Batch
		r router.Result
	}
	for _, lag := range []int{0, 1, 7, 49, 50, 51, total} {
		for _, mode := range []string{"messages", "bytes", "store", "policy"} {
			t.Run(strconv.Itoa(lag)+"/"+mode, func(t *testing.T) {
				lim := Limits{MaxMessages: limit, MaxBytes: 1 << 20, Policy: DropOldest}
				msgSize := (&store.Message{Topic: "t", Payload: []byte("00")}).Size()
				switch mode {
				case "bytes":
					lim = Limits{MaxBytes: limit * msgSize, Policy: DropOldest}
				case "policy": // the account's budget holds limit messages
					lim = Limits{MaxMessages: total, MaxBytes: 1 << 20, Policy: DropOldest, Account: NewAccount("p")}
					lim.Account.SetBudget(limit * msgSize)
				}
				f := newFixture(t, 3600, lim)
				var q []held
				commitOne := func() {
					h := q[0]
					q = q[1:]
					f.commit(h.b)
					if h.r.Settle != 0 {
						f.s.Settle(h.r.Settle, true)
					}
				}
				for i := range total {
					f.ids++
					m := &store.Message{ID: f.ids, Topic: "t", Payload: []byte(fmt.Sprintf("%02d", i)), QoS: 1, PublishedAt: f.clk.now()}
					b := new(store.Batch)
					b.PutMessage(m)
					// "store": the global budget is reached from the limit on.
					r := f.s.Offer(m, router.Delivery{QoS: 1, StoreFull: mode == "store" && i >= limit}, b)
					if r.Dropped != "" {
						t.Fatalf("message %d dropped (%s): the newest must be kept", i, r.Dropped)
					}
					q = append(q, held{b, r})
					if len(q) > lag {
						commitOne()
					}
				}
				for len(q) > 0 {
					commitOne()
				}
				reason := DropQueueFull
				switch mode {
				case "store":
					reason = DropStoreFull
				case "policy":
					reason = DropPolicyStoreFull
					if d := lim.Account.Drops(); len(d) != 1 || d[reason] != total-limit {
						t.Fatalf("account drops %v, want %d %s", d, total-limit, reason)
					}
				}
				if f.drops[reason] != total-limit {
					t.Fatalf("drops %v, want %d %s", f.drops, total-limit, reason)
				}
				var want []string
				for i := total - limit; i < total; i++ {
					want = append(want, fmt.Sprintf("%02d", i))
				}
				if got := f.drainAll(); !equal(got, want) {
					t.Fatalf("delivered %v, want %v", got, want)
				}
				if st := f.st.Stats(); st.Messages != 0 {
					t.Fatalf("store still holds %d messages", st.Messages)
				}
			})
		}
	}
}

// drainAll attaches the session and acknowledges everything it delivers.
func (f *fixture) drainAll() []string {
	f.t.Helper()
	_ = f.s.Attach(100, func() {})
	var got []string
	for {
		out := f.next(100)
		if len(out) == 0 {
			return got
		}
		var b store.Batch
		for _, o := range out {
			got = append(got, string(o.Msg.Payload))
			_ = f.s.Puback(o.PacketID, &b)
		}
		f.commit(&b)
	}
}

// TestSessionAtRest: a restored offline session holds only what routing
// and its record need; the inbound QoS 2 set, the inflight map, the purge
// state and the delivery state are made on first use, and the struct
// stays within its size class (a broker holds a million of them; see
// docs/architecture.md).
func TestSessionAtRest(t *testing.T) {
	st := &store.SessionState{Session: store.Session{ClientID: "d", ExpiryInterval: 3600},
		Subscriptions: []store.Subscription{{Filter: "fleet/d/cmd", QoS: 1}}}
	s := Restore(st, nil, &Env{Reader: memstore.New()})
	if s.inbound != nil || s.q.inflight != nil || s.q.pg != nil || s.q.live != nil || s.q.pending.a != nil {
		t.Errorf("at rest: inbound %v, inflight %v, purge state %v, live state %v, uncommitted entries %v; want none",
			s.inbound, s.q.inflight, s.q.pg, s.q.live, s.q.pending.a)
	}
	if size := unsafe.Sizeof(*s); size > 240 {
		t.Errorf("Session is %d bytes, over its 240-byte size class", size)
	}
	var b store.Batch
	if s.BeginInbound(7, &b) || !s.BeginInbound(7, &b) || !s.ReleaseInbound(7, &b) {
		t.Error("inbound QoS 2 state made on first use does not work")
	}
	st.InboundQoS2 = []uint16{9}
	if r := Restore(st, nil, &Env{Reader: memstore.New()}); !r.InboundFull(10, 1) || r.InboundFull(9, 1) {
		t.Error("restored inbound QoS 2 ID not kept")
	}
}
