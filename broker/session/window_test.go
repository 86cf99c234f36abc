package session

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
)

// countingReader records the most bytes one bounded store read handed to
// the session.
type countingReader struct {
	rd      Reader
	maxRead int64
}

func (c *countingReader) ReadQueue(id string, after uint64, limit int, fn func(store.QueueEntry, *store.Message) bool) error {
	var n int64
	err := c.rd.ReadQueue(id, after, limit, func(e store.QueueEntry, m *store.Message) bool {
		n += m.Size()
		return fn(e, m)
	})
	if limit > 0 {
		c.maxRead = max(c.maxRead, n)
	}
	return err
}

// ReadQueueEntries hands the session no message.
func (c *countingReader) ReadQueueEntries(id string, after uint64, limit int, fn func(store.QueueEntry, int64) bool) error {
	return c.rd.ReadQueueEntries(id, after, limit, fn)
}

// offerSized queues and commits a QoS qos message of size bytes on topic;
// the payload starts with its sequence number on that topic.
func (f *fixture) offerSized(topic string, n int, size int, qos byte, expiresAt time.Time) router.Result {
	f.t.Helper()
	f.ids++
	p := make([]byte, size-len(topic))
	copy(p, strconv.Itoa(n)+"/")
	return f.offerMessage(&store.Message{ID: f.ids, Topic: topic, Payload: p, QoS: qos, PublishedAt: f.clk.now(), ExpiresAt: expiresAt})
}

func seqOf(o Outgoing) int {
	p := string(o.Msg.Payload)
	for i := range len(p) {
		if p[i] == '/' {
			n, _ := strconv.Atoi(p[:i])
			return n
		}
	}
	return -1
}

// replay tracks what a client received, checking per-topic order, the
// bytes in flight and the bytes the session holds in memory.
type replay struct {
	t        *testing.T
	f        *fixture
	win      int64
	next     map[string]int // next sequence number expected per topic
	flight   []Outgoing     // unacknowledged PUBLISHes, oldest first
	received int
}

func (r *replay) flightBytes() int64 {
	var n int64
	for _, o := range r.flight {
		n += o.Msg.Size()
	}
	return n
}

func (r *replay) headBytes() int64 {
	var n int64
	for _, it := range r.f.s.q.head {
		n += it.size
	}
	return n
}

// pull takes what the session sends now and checks the windows.
func (r *replay) pull() int {
	r.t.Helper()
	out := r.f.next(1000)
	for _, o := range out {
		if o.Pubrel {
			continue
		}
		if o.Dup {
			r.flight = append(r.flight, o)
			continue
		}
		if got, want := seqOf(o), r.next[o.Msg.Topic]; got != want {
			r.t.Fatalf("topic %s: got message %d, want %d", o.Msg.Topic, got, want)
		}
		r.next[o.Msg.Topic]++
		r.received++
		r.flight = append(r.flight, o)
	}
	if fb := r.flightBytes(); fb > r.win && len(r.flight) > 1 {
		r.t.Fatalf("%d bytes in flight in %d messages, window %d", fb, len(r.flight), r.win)
	}
	// A non-persistent session holds its whole queue in memory (bounded
	// by the queue limits): only the stored backlog is read ahead.
	if hb := r.headBytes(); hb > r.win && len(r.f.s.q.head) > 1 && r.f.s.persistent() {
		r.t.Fatalf("%d bytes read ahead in %d messages, window %d", hb, len(r.f.s.q.head), r.win)
	}
	if r.f.s.q.flightBytes != r.flightBytes() || r.f.s.q.headBytes != r.headBytes() {
		r.t.Fatalf("byte counters flight %d/%d head %d/%d", r.f.s.q.flightBytes, r.flightBytes(), r.f.s.q.headBytes, r.headBytes())
	}
	return len(out)
}

// ack acknowledges the oldest n messages in flight (QoS 2: PUBREC, then
// PUBCOMP).
func (r *replay) ack(n int) {
	r.t.Helper()
	var b store.Batch
	for ; n > 0 && len(r.flight) > 0; n-- {
		o := r.flight[0]
		r.flight = r.flight[1:]
		if o.QoS == 1 {
			if err := r.f.s.Puback(o.PacketID, &b); err != nil {
				r.t.Fatal(err)
			}
			continue
		}
		if _, err := r.f.s.Pubrec(o.PacketID, false, &b); err != nil {
			r.t.Fatal(err)
		}
		if err := r.f.s.Pubcomp(o.PacketID, &b); err != nil {
			r.t.Fatal(err)
		}
	}
	r.f.commit(&b)
}

// A backlog of 1,000 messages of 64 KiB replays through a 1 MiB window:
// never more than the window read ahead into memory or unacknowledged in
// flight (the Receive Maximum alone would allow 100 messages, 6.4 MiB),
// per-topic order kept across a reconnection that resends the inflight
// messages.
func TestReplayPacedByByteWindow(t *testing.T) {
	const n, size, win = 1000, 64 << 10, 1 << 20
	f := newFixture(t, 3600, Limits{MaxMessages: 1 << 20, MaxBytes: 1 << 30, WindowBytes: win})
	cr := &countingReader{rd: f.st}
	f.s.env.Reader = cr
	topics := []string{"a", "b", "c"}
	for i := range n {
		tp := topics[i%len(topics)]
		f.offerSized(tp, i/len(topics), size, byte(1+i%2), time.Time{})
	}
	r := &replay{t: t, f: f, win: win, next: map[string]int{}}
	if err := f.s.Attach(100, func() {}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for round := 0; r.received < n; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("stalled after %d messages", r.received)
		}
		if r.pull() == 0 && len(r.flight) == 0 {
			t.Fatalf("nothing sent and nothing in flight after %d messages", r.received)
		}
		if round == 20 { // reconnect with messages in flight
			f.detach()
			r.flight = nil
			if err := f.s.Attach(100, func() {}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		r.ack(1 + round%5)
	}
	if cr.maxRead > win+size {
		t.Fatalf("one store read returned %d bytes", cr.maxRead)
	}
	for r.pull() > 0 || len(r.flight) > 0 {
		r.ack(len(r.flight))
	}
	if i := f.s.Info(); i.QueuedMessages != 0 || i.QueuedBytes != 0 {
		t.Fatalf("queue left %+v", i)
	}
}

// A message larger than the window is still delivered, alone.
func TestByteWindowAdmitsOneLargeMessage(t *testing.T) {
	for _, persistent := range []uint32{0, 3600} {
		t.Run(fmt.Sprint("expiry=", persistent), func(t *testing.T) {
			f := newFixture(t, persistent, Limits{MaxMessages: 100, MaxBytes: 1 << 20, WindowBytes: 1000})
			_ = f.s.Attach(10, func() {})
			for i := range 3 {
				f.offerSized("big", i, 4000, 1, time.Time{})
			}
			r := &replay{t: t, f: f, win: 1000, next: map[string]int{}}
			for r.received < 3 {
				if got := r.pull(); got != 1 {
					t.Fatalf("sent %d messages at once, want 1 (after %d)", got, r.received)
				}
				if r.pull() != 0 {
					t.Fatal("sent a second message over the window")
				}
				r.ack(1)
			}
		})
	}
}

// Messages published to an online client that does not read stay in the
// store past the byte window, and QoS 0 ones do not wait for it.
func TestLiveMessagesBoundedByByteWindow(t *testing.T) {
	const size, win = 10 << 10, 64 << 10
	f := newFixture(t, 3600, Limits{MaxMessages: 1000, MaxBytes: 1 << 30, WindowBytes: win})
	_ = f.s.Attach(1000, func() {})
	for i := range 200 {
		f.offerSized("t", i, size, 1, time.Time{})
		if hb := f.s.q.headBytes; hb > win {
			t.Fatalf("%d bytes held in memory after %d messages", hb, i+1)
		}
	}
	r := &replay{t: t, f: f, win: win, next: map[string]int{}}
	if got := r.pull(); got != win/size {
		t.Fatalf("first window sent %d messages, want %d", got, win/size)
	}
	for r.received < 200 {
		r.ack(2)
		r.pull()
	}
}
