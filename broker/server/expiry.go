package server

import (
	"container/heap"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
)

// maxSweepWait bounds the sweeper's sleep, so that an injected clock that
// jumps ahead is noticed within a second.
const maxSweepWait = time.Second

// sweeper expires offline sessions and publishes delayed wills at their
// time. It keeps a min-heap of (time, client ID) deadlines and looks only
// at its top: no scan of all sessions. Entries can be stale (the client
// reconnected); the session's own state is checked when one comes due.
type sweeper struct {
	s    *Server
	mu   sync.Mutex
	h    deadlines
	poke chan struct{}
	quit chan struct{}
	wg   sync.WaitGroup
}

type deadline struct {
	at time.Time
	id string
}

type deadlines []deadline

func (d deadlines) Len() int           { return len(d) }
func (d deadlines) Less(i, j int) bool { return d[i].at.Before(d[j].at) }
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

// schedule adds the session's expiry and will deadlines.
func (w *sweeper) schedule(sess *session.Session) {
	id := sess.ClientID()
	w.mu.Lock()
	for _, t := range []time.Time{sess.ExpiresAt(), sess.WillDueAt()} {
		if !t.IsZero() {
			heap.Push(&w.h, deadline{at: t, id: id})
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
	return min(max(w.h[0].at.Sub(w.s.now()), time.Millisecond), maxSweepWait)
}

// runDue handles every deadline that has come.
func (w *sweeper) runDue() {
	now := w.s.now()
	for {
		w.mu.Lock()
		if len(w.h) == 0 || w.h[0].at.After(now) {
			w.mu.Unlock()
			return
		}
		d := heap.Pop(&w.h).(deadline)
		w.mu.Unlock()
		w.s.expire(d.id, now)
	}
}

// expire publishes a due will and deletes an expired session, if the
// session is still offline.
func (s *Server) expire(id string, now time.Time) {
	var b store.Batch
	var will *store.Will
	s.mu.Lock()
	e := s.sessions[id]
	if e == nil || e.owner != nil {
		s.mu.Unlock()
		return
	}
	if due := e.sess.WillDueAt(); !due.IsZero() && !due.After(now) {
		will = e.sess.TakeWill(&b)
	}
	if exp := e.sess.ExpiresAt(); !exp.IsZero() && !exp.After(now) {
		info := e.sess.Info()
		s.removeSessionLocked(id, e, &b)
		if info.QueuedMessages > 0 {
			s.stats.drop(s.log, id, DropSessionExpired, int(info.QueuedMessages))
		}
		s.log.Info("session expired", "client", id, "queued", info.QueuedMessages)
	}
	s.mu.Unlock()
	if will != nil {
		s.publishWill(id, will)
	}
	if b.Len() > 0 {
		s.com.submit(&job{b: &b, done: func(err error) {
			if err != nil {
				s.log.Error("storing session expiry", "client", id, "err", err)
			}
		}})
	}
}
