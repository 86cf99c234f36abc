package engine

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// committerStores runs f against the serial (memstore) and the pipelined
// (pebblestore) committer.
func committerStores(t *testing.T, f func(t *testing.T, st store.Store)) {
	t.Run("memstore", func(t *testing.T) { f(t, memstore.New()) })
	t.Run("pebblestore", func(t *testing.T) {
		st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = st.Close() })
		f(t, st)
	})
}

func newTestCommitter(t *testing.T, st store.Store) *committer {
	c := newCommitter(st, newHistogram())
	t.Cleanup(c.stop)
	return c
}

func sessionBatch(id string) *store.Batch {
	b := &store.Batch{}
	b.PutSession(&store.Session{ClientID: id, CreatedAt: time.Unix(1, 0)})
	return b
}

// TestCommitterOrder: jobs finish in submission order, and a job that
// depends on an earlier one (an enqueue after its session's creation)
// sees it, however the jobs were grouped and pipelined.
func TestCommitterOrder(t *testing.T) {
	committerStores(t, func(t *testing.T, st store.Store) {
		c := newTestCommitter(t, st)
		const n = 2001
		var mu sync.Mutex
		var got []int
		var wg sync.WaitGroup
		wg.Add(n)
		for i := range n {
			var b *store.Batch
			switch i % 3 {
			case 0:
				b = sessionBatch(fmt.Sprintf("c%d", i))
			case 1:
				m := &store.Message{ID: st.NextMessageID(), Topic: "t", Payload: []byte("x")}
				b = &store.Batch{}
				b.PutMessage(m)
				b.Enqueue(fmt.Sprintf("c%d", i-1), &store.QueueEntry{Seq: 1, MessageID: m.ID, QoS: 1})
			default:
				b = &store.Batch{NoSync: true}
				b.Dequeue(fmt.Sprintf("c%d", i-2), 1)
			}
			c.submit(&job{b: b, onStored: func(err error) {
				if err != nil {
					t.Errorf("job %d: %v", i, err)
				}
				mu.Lock()
				got = append(got, i)
				mu.Unlock()
				wg.Done()
			}})
		}
		wg.Wait()
		for i, v := range got {
			if v != i {
				t.Fatalf("job %d finished in position %d", v, i)
			}
		}
		if s := st.Stats(); s.Messages != 0 || s.Sessions != n/3 {
			t.Fatalf("stats %+v", s)
		}
	})
}

// TestCommitterFailsAlone: an invalid batch merged with valid ones fails
// alone; the others are applied.
func TestCommitterFailsAlone(t *testing.T) {
	committerStores(t, func(t *testing.T, st store.Store) {
		c := newTestCommitter(t, st)
		block := make(chan struct{})
		// Hold the committer in a callback so that the next jobs queue up
		// and are merged into one group.
		c.submit(&job{b: sessionBatch("first"), onStored: func(error) { <-block }})
		errs := make([]chan error, 3)
		for i := range errs {
			errs[i] = make(chan error, 1)
			b := sessionBatch(fmt.Sprintf("s%d", i))
			if i == 1 {
				b = &store.Batch{}
				b.Dequeue("missing", 7)
			}
			c.submit(&job{b: b, onStored: func(err error) { errs[i] <- err }})
		}
		close(block)
		for i, ch := range errs {
			err := <-ch
			if (i == 1) != errors.Is(err, store.ErrNotFound) {
				t.Errorf("job %d: %v", i, err)
			}
		}
		if s := st.Stats(); s.Sessions != 3 {
			t.Fatalf("sessions %d, want 3", s.Sessions)
		}
	})
}

// TestCommitterStop: stop finishes queued jobs; later submits fail with
// ErrClosed.
func TestCommitterStop(t *testing.T) {
	committerStores(t, func(t *testing.T, st store.Store) {
		c := newCommitter(st, newHistogram())
		done := make(chan error, 100)
		for i := range 100 {
			c.submit(&job{b: sessionBatch(fmt.Sprintf("c%d", i)), onStored: func(err error) { done <- err }})
		}
		c.stop()
		for range 100 {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
		if err := c.commit(sessionBatch("late")); !errors.Is(err, store.ErrClosed) {
			t.Fatalf("after stop: %v", err)
		}
	})
}
