package engine

import (
	"container/heap"
	"math"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// maxSweepWait bounds the sweeper's sleep, so that an injected clock that
// jumps ahead is noticed within a second.
const maxSweepWait = time.Second

// sweeper expires offline sessions and publishes delayed wills at their
// time. It keeps a min-heap of (time, session) deadlines and looks only
// at its top: no scan of all sessions. Entries can be stale (the client
// reconnected); the session's own state is checked when one comes due.
// The earliest deadline queued for a session is kept in its registry
// entry (sessionEntry.due), not in a map by client ID: at a million
// offline sessions such a map cost ~50 bytes each.
type sweeper struct {
	s  *Server
	mu sync.Mutex // also guards sessionEntry.due
	h  deadlines
	// loading: recovery is queueing the deadlines of every stored session;
	// they are appended and the heap is built once (endLoad), not pushed
	// one by one.
	loading bool
	poke    chan struct{}
	quit    chan struct{}
	wg      sync.WaitGroup
}

// deadline is a session's next deadline. A sweeper holds one per offline
// session, so it is kept small: the time as unixNanos, not a time.Time,
// and the session's entry rather than its client ID.
type deadline struct {
	at int64
	e  *sessionEntry
}

// unixNanos is t in Unix nanoseconds, clamped to the int64 range (an
// expiry interval of 2^32-1 s from a late disconnection may lie beyond
// the year 2262).
func unixNanos(t time.Time) int64 {
	const maxSec = math.MaxInt64/int64(time.Second) - 1
	switch s := t.Unix(); {
	case s >= maxSec:
		return math.MaxInt64
	case s <= -maxSec:
		return math.MinInt64
	}
	return t.UnixNano()
}

type deadlines []deadline

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at < d[j].at }
func (d deadlines) Swap(i, j int)      { d[i], d[j] = d[j], d[i] }
func (d *deadlines) Push(x any)        { *d = append(*d, x.(deadline)) }
func (d *deadlines) Pop() any {
	old := *d
	x := old[len(old)-1]
	*d = old[:len(old)-1]
	return x
}

func newSweeper(s *Server) *sweeper {
	return &sweeper{s: s, poke: make(chan struct{}, 1), quit: make(chan struct{})}
}

// reserve makes room for n sessions' deadlines, before recovery.
func (w *sweeper) reserve(n int) {
	w.mu.Lock()
	if len(w.h) == 0 {
		w.h = make(deadlines, 0, n)
	}
	w.mu.Unlock()
}

// beginLoad makes schedule append deadlines without ordering them, for
// recovery; endLoad orders them all at once.
func (w *sweeper) beginLoad() {
	w.mu.Lock()
	w.loading = true
	w.mu.Unlock()
}

// endLoad builds the heap of the deadlines queued since beginLoad.
func (w *sweeper) endLoad() {
	w.mu.Lock()
	w.loading = false
	heap.Init(&w.h)
	w.mu.Unlock()
}

// schedule queues the session's next deadline (will or expiry). One
// deadline per session is enough: when it comes, the session is looked at
// and its following deadline queued; so the heap stays as large as the
// number of offline sessions, however often clients reconnect.
func (w *sweeper) schedule(e *sessionEntry) {
	due := earliest(e.sess.WillDueAt(), e.sess.ExpiresAt())
	if due.IsZero() {
		return
	}
	t := unixNanos(due)
	w.mu.Lock()
	if e.due == 0 || t < e.due {
		e.due = t
		if w.loading {
			w.h = append(w.h, deadline{at: t, e: e})
		} else {
			heap.Push(&w.h, deadline{at: t, e: e})
		}
	}
	w.mu.Unlock()
	select {
	case w.poke <- struct{}{}:
	default:
	}
}

func (w *sweeper) start() {
	w.wg.Add(1)
	go w.run()
}

func (w *sweeper) stop() {
	select {
	case <-w.quit:
	default:
		close(w.quit)
	}
	w.wg.Wait()
}

func (w *sweeper) run() {
	defer w.wg.Done()
	t := time.NewTimer(maxSweepWait)
	defer t.Stop()
	for {
		select {
		case <-w.quit:
			return
		case <-w.poke:
		case <-t.C:
		}
		w.runDue()
		t.Reset(w.wait())
	}
}

// wait is how long to sleep until the next deadline.
func (w *sweeper) wait() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.h) == 0 {
		return maxSweepWait
	}
	return min(max(time.Duration(w.h[0].at-unixNanos(w.s.now())), time.Millisecond), maxSweepWait)
}

// runDue handles every deadline that has come.
func (w *sweeper) runDue() {
	now := w.s.now()
	nowN := unixNanos(now)
	for {
		w.mu.Lock()
		if len(w.h) == 0 || w.h[0].at > nowN {
			w.mu.Unlock()
			return
		}
		d := heap.Pop(&w.h).(deadline)
		if d.e.due != 0 && d.e.due <= d.at {
			d.e.due = 0
		}
		w.mu.Unlock()
		if e := w.s.expire(d.e, now); e != nil {
			w.schedule(e)
		}
	}
}

// earliest is the earlier of two times, ignoring zero ones.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}

// expire publishes a due will and deletes an expired session, if the
// session of entry de is still registered and offline. It returns the
// entry when the session stays offline (its next deadline must be queued).
// A deadline of an entry that was removed (and perhaps replaced by a new
// session with the same client ID, which queued its own deadlines) does
// nothing.
func (s *Server) expire(de *sessionEntry, now time.Time) *sessionEntry {
	var b store.Batch
	var will *store.Will
	id := de.sess.ClientID()
	s.mu.Lock()
	e := s.sessions[id]
	if e != de || e.owner != nil {
		s.mu.Unlock()
		return nil
	}
	remaining := e
	if due := e.sess.WillDueAt(); !due.IsZero() && !due.After(now) {
		will = e.sess.TakeWill(&b)
	}
	if exp := e.sess.ExpiresAt(); !exp.IsZero() && !exp.After(now) {
		info := e.sess.Info()
		e.sess.CountDrops(DropSessionExpired, int(info.QueuedMessages)) // before Release: its policy counts them too
		s.removeSessionLocked(id, e, &b)
		s.log.Info("session expired", "client", id, "queued", info.QueuedMessages)
		remaining = nil
	}
	s.mu.Unlock()
	if will != nil {
		s.publishWill(id, will)
	}
	if b.Len() > 0 {
		s.seqMu.Lock() // behind the fan-outs that reached the session; see commitOrdered
		s.com.submit(&job{b: &b, onStored: func(err error) {
			if err != nil {
				s.storeErrs.add(s.log, s.now(), "storing session expiry", err, "client", id)
			}
		}})
		s.seqMu.Unlock()
	}
	return remaining
}
