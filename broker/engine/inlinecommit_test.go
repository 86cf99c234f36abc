package engine

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

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

// An idle committer commits a submitInline job on the calling goroutine:
// stored, fsynced (observed in the fsync histogram) and finished before
// submitInline returns. While another job is in flight it queues instead.
// A store that does not take inline commits (memstore) always queues.
func TestInlineCommitWhenIdle(t *testing.T) {
	c, st := pebbleCommitter(t)
	ran := false // written by onStored: read without synchronisation, so only an inline run is race-free
	c.submitInline(&job{b: sessionBatch("a"), onStored: func(err error) {
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
	nosync := sessionBatch("b2")
	nosync.NoSync = true
	c.submitInline(&job{b: nosync, onStored: func(err error) { done <- err }})
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
					} else if c.startInline(j) {
						c.applyInline()
						c.finishInline()
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
