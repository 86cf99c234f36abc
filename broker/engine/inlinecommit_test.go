package engine

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
	"github.com/bollard-io/bollard/test/poll"
)

func pebbleCommitter(t *testing.T) (*committer, *pebblestore.Store) {
	t.Helper()
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return newTestCommitter(t, st), st
}

// An idle committer commits an inline job on the calling goroutine:
// stored, fsynced (observed in the fsync histogram) and finished before
// finishInline returns. While another job is in flight it queues instead.
// A store that does not take inline commits (memstore) always queues.
func TestInlineCommitWhenIdle(t *testing.T) {
	c, st := pebbleCommitter(t)
	ran := false // written by onStored: read without synchronisation, so only an inline run is race-free
	inline(c, &job{b: sessionBatch("a"), onStored: func(err error) {
		if err != nil {
			t.Error(err)
		}
		ran = true
	}})
	if !ran {
		t.Fatal("submitInline on an idle committer returned before the job finished")
	}
	if n := c.hist.snapshot().Count; n != 1 {
		t.Fatalf("fsync histogram counted %d commits, want 1", n)
	}
	if s := st.Stats(); s.Sessions != 1 {
		t.Fatalf("sessions %d, want 1", s.Sessions)
	}

	// A job in flight (held in its onStored on settle): the next queues.
	release := make(chan struct{})
	c.submit(&job{b: sessionBatch("b"), onStored: func(error) { <-release }})
	done := make(chan error, 1)
	inline(c, &job{b: sessionBatch("b2"), onStored: func(err error) { done <- err }})
	select {
	case err := <-done:
		t.Fatalf("a job finished inline behind one in flight: %v", err)
	default:
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	mc := newTestCommitter(t, memstore.New())
	if mc.startInline(&job{b: sessionBatch("m"), onStored: func(error) {}}) {
		t.Fatal("memstore committer took an inline commit")
	}
}

// inline commits j inline if the committer takes it, else submits it.
func inline(c *committer, j *job) {
	if c.startInline(j) {
		c.applyInline()
		c.finishInline()
	}
}

// A job submitted while an inline job waits for its fsync is applied after
// it and finishes after it, even once its own fsync is done: settle waits
// for the inline job's onStored.
func TestInlineCommitFinishesFirst(t *testing.T) {
	c, st := pebbleCommitter(t)
	var mu sync.Mutex
	var order []string
	record := func(name string) {
		mu.Lock()
		order = append(order, name)
		mu.Unlock()
	}
	if !c.startInline(&job{b: sessionBatch("a"), onStored: func(err error) {
		if err != nil {
			t.Error(err)
		}
		record("a")
	}}) {
		t.Fatal("idle committer refused an inline job")
	}
	c.applyInline()
	bDone := make(chan struct{})
	c.submit(&job{b: sessionBatch("b"), onStored: func(err error) {
		if err != nil {
			t.Error(err)
		}
		record("b")
		close(bDone)
	}})
	poll.Wait(t, 10*time.Second, time.Millisecond, "b applied", func() bool { return st.Stats().Sessions == 2 })
	// b is in the memtable; a synced commit behind it syncs b's WAL
	// record too, so settle has b's fsync outcome from here on.
	if err := st.Commit(context.Background(), sessionBatch("c")); err != nil {
		t.Fatal(err)
	}
	err := poll.Until(context.Background(), 100*time.Millisecond, time.Millisecond, func(context.Context) error {
		select {
		case <-bDone:
			return nil
		default:
			return errors.New("b not finished")
		}
	})
	if err == nil {
		t.Error("a job submitted after an inline one finished first")
	}
	c.finishInline() // even after a failure: stop waits for it
	<-bDone
	if fmt.Sprint(order) != "[a b]" {
		t.Fatalf("finish order %v, want [a b]", order)
	}
}

// Several submitters, each creating its sessions, enqueueing to them and
// acknowledging, with inline and queued commits mixed however the
// committer's idleness falls: every job succeeds (a later batch sees the
// earlier ones of its submitter applied) and each submitter's jobs finish
// in its submission order.
func TestInlineCommitOrderConcurrent(t *testing.T) {
	c, st := pebbleCommitter(t)
	const submitters, rounds = 4, 60
	var wg sync.WaitGroup
	for g := range submitters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mu sync.Mutex
			next := 0
			var last sync.WaitGroup
			for r := range rounds {
				id := fmt.Sprintf("g%d-%d", g, r)
				m := &store.Message{ID: st.NextMessageID(), Topic: "t", Payload: []byte("x")}
				enq := sessionBatch(id)
				enq.PutMessage(m)
				enq.Enqueue(id, &store.QueueEntry{Seq: 1, MessageID: m.ID, QoS: 1})
				ack := &store.Batch{NoSync: true}
				ack.Dequeue(id, 1)
				for k, b := range []*store.Batch{enq, ack} {
					want := 2*r + k
					last.Add(1)
					j := &job{b: b, onStored: func(err error) {
						defer last.Done()
						if err != nil {
							t.Errorf("%s job %d: %v", id, k, err)
						}
						mu.Lock()
						if next != want {
							t.Errorf("submitter %d: job %d finished in place %d", g, want, next)
						}
						next++
						mu.Unlock()
					}}
					if k == 0 && r%2 == 0 {
						c.submit(j)
					} else {
						inline(c, j)
					}
				}
			}
			last.Wait()
		}()
	}
	wg.Wait()
	if s := st.Stats(); s.Messages != 0 || s.Sessions != submitters*rounds {
		t.Fatalf("stats %+v", s)
	}
}

// After stop, an inline submit fails with store.ErrClosed like submit.
func TestInlineCommitAfterStop(t *testing.T) {
	c, _ := pebbleCommitter(t)
	c.stop()
	var got error
	if c.startInline(&job{b: sessionBatch("a"), onStored: func(err error) { got = err }}) {
		t.Fatal("a stopped committer took an inline job")
	}
	if !errors.Is(got, store.ErrClosed) {
		t.Fatalf("got %v, want store.ErrClosed", got)
	}
}

// An online persistent subscriber in sync mode, fed by a publisher with
// one message in flight (its publishes commit inline when the committer
// is idle) and a publisher with bursts of 32 (through the pipeline),
// concurrently: every message arrives once, without DUP, in each
// publisher's order, and once the subscriber acknowledged them all the
// queue is empty in the store.
func TestInlineCommitOnlineSubscriber(t *testing.T) {
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Durability: pebblestore.Sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	b := startBroker(t, testConfig(), withStore(st))
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "isub", CleanStart: true,
		Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "cp/#", QoS: 1})

	const n = 200
	errs := make(chan error, 2)
	go func() { errs <- publishOneByOne(b.addr, 0, n) }()
	go func() { errs <- publishBurst(b.addr, 1, n) }()
	next := make([]int, 2)
	for range 2 * n {
		p := sub.recvPublish()
		if p.Dup {
			t.Fatalf("delivery %s has DUP set", p.Payload)
		}
		pub, seq, _ := strings.Cut(string(p.Payload), ":")
		i, _ := strconv.Atoi(pub)
		s, _ := strconv.Atoi(seq)
		if i < 0 || i > 1 || s != next[i] {
			t.Fatalf("publisher %s message %d arrived when %v were expected", pub, s, next)
		}
		next[i]++
		sub.send(&packet.Puback{PacketID: p.PacketID})
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	poll.Wait(t, 10*time.Second, 5*time.Millisecond, "the subscriber's queue emptied in the store", func() bool {
		return st.Stats().Messages == 0
	})
}

// publishOneByOne publishes n QoS 1 messages, each after the PUBACK of
// the one before.
func publishOneByOne(addr string, p, n int) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	r := packet.NewReader(nc, packet.V5, 0)
	if err := packet.Write(nc, &packet.Connect{ProtocolVersion: packet.V5, ClientID: fmt.Sprintf("cpub%d", p), CleanStart: true}, packet.V5); err != nil {
		return err
	}
	if _, err := r.ReadPacket(); err != nil {
		return err
	}
	for i := range n {
		pub := &packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: fmt.Sprintf("cp/%d", p), Payload: fmt.Appendf(nil, "%d:%d", p, i)}
		if err := packet.Write(nc, pub, packet.V5); err != nil {
			return err
		}
		pk, err := r.ReadPacket()
		if err != nil {
			return err
		}
		if a, ok := pk.(*packet.Puback); !ok || a.PacketID != uint16(i+1) || a.ReasonCode != packet.Success {
			return fmt.Errorf("publisher %d message %d: unexpected %+v", p, i, pk)
		}
	}
	return nil
}

// A commit that needs an fsync, submitted while an inline one waits for
// its own, turns inline commits off for the next inlineBackoff idle
// moments (they share the pipeline's fsyncs); then they come back.
func TestInlineCommitBacksOff(t *testing.T) {
	c, _ := pebbleCommitter(t)
	if !c.startInline(&job{b: sessionBatch("a"), onStored: func(error) {}}) {
		t.Fatal("idle committer refused an inline job")
	}
	c.applyInline()
	done := make(chan error, 1)
	c.submit(&job{b: sessionBatch("b"), onStored: func(err error) { done <- err }}) // through submit: no back-off
	nosync := sessionBatch("n")
	nosync.NoSync = true
	c.submit(&job{b: nosync, onStored: func(error) {}})
	if c.skipInline != 0 {
		t.Fatal("submit backed off inline commits")
	}
	if c.startInline(&job{b: sessionBatch("c"), onStored: func(err error) { done <- err }}) {
		t.Fatal("a second inline job while one is in flight")
	}
	c.finishInline()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	poll.Wait(t, 10*time.Second, time.Millisecond, "committer idle", func() bool { return c.jobs.Load() == 0 })
	for i := range inlineBackoff {
		if c.startInline(&job{b: sessionBatch(fmt.Sprintf("d%d", i)), onStored: func(err error) { done <- err }}) {
			t.Fatalf("inline commit %d of the back-off taken", i)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		poll.Wait(t, 10*time.Second, time.Millisecond, "committer idle", func() bool { return c.jobs.Load() == 0 })
	}
	if !c.startInline(&job{b: sessionBatch("e"), onStored: func(error) {}}) {
		t.Fatal("inline commits did not come back after the back-off")
	}
	c.applyInline()
	c.finishInline()
}

// A panic in an inline job's onStored (which a read loop may recover)
// does not wedge the committer: a later job still finishes and stop
// returns (the test's cleanup).
func TestInlineCommitPanicDoesNotWedge(t *testing.T) {
	c, _ := pebbleCommitter(t)
	panicked := func() (p any) {
		defer func() { p = recover() }()
		inline(c, &job{b: sessionBatch("a"), onStored: func(error) { panic("onStored") }})
		return nil
	}()
	if panicked == nil {
		t.Fatal("the inline job's onStored did not run inline")
	}
	done := make(chan error, 1)
	c.submit(&job{b: sessionBatch("b"), onStored: func(err error) { done <- err }})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a job submitted after a panicking inline job never finished")
	}
}
