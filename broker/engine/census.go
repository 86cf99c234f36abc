package engine

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// The session census: the totals of /v1/status and /metrics (sessions
// online and offline, queued messages and bytes), the deepest queues and
// the fullest queue's fill come from one walk over every session.
//
// Its cost is bounded however often it is asked for: a census serves every
// request until censusMaxAge after its walk ended, or nine times the walk's
// duration when longer, so walking takes at most a tenth of one core
// (concurrent requests wait for the one walk in progress and share it);
// the walk holds Server.mu only to copy
// censusChunk entries at a time (a CONNECT waits for one chunk, never for
// the whole walk), reads each session under its own lock with no
// allocation, and keeps the deepest queues in a sorted list of at most
// maxTopQueues entries. A million sessions cost one walk per second at
// most, whatever the number of scrapers, status queries or attackers with
// the token.
const (
	censusMaxAge = time.Second
	censusIdle   = 9 // times the walk's duration between walks, at least
	censusChunk  = 1024
	// StatusTopQueues is how many of the deepest queues /v1/status lists.
	StatusTopQueues = 10
)

// QueueDepth is one session's queue among the deepest.
type QueueDepth struct {
	ClientID string `json:"clientID"`
	// Messages and Bytes are the queue, inflight entries included.
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
	// Policy names the queue policy whose limits the session has
	// ("default": none of queues.policies selects it); empty when the
	// session has no account.
	Policy string `json:"policy,omitempty"`
}

// census is the result of one walk.
type census struct {
	at              time.Time     // the walk's start
	next            time.Time     // when the next walk may start
	took            time.Duration // the walk
	online, offline int64
	msgs, bytes     int64
	fullest         float64
	top             []QueueDepth // deepest first
}

// censusTaker holds the last census and the state of the walk.
type censusTaker struct {
	last  atomic.Pointer[census]
	walk  sync.Mutex // one walk at a time; taken before Server.mu
	chunk []*sessionEntry
	walks atomic.Uint64 // walks done (tests)
}

// census returns the last census, walking the sessions again when it is
// due (see censusMaxAge).
func (s *Server) census() *census {
	t := &s.censuses
	if c := t.last.Load(); c != nil && time.Now().Before(c.next) {
		return c
	}
	t.walk.Lock()
	defer t.walk.Unlock()
	if c := t.last.Load(); c != nil && time.Now().Before(c.next) {
		return c // counted while this caller waited
	}
	c := s.takeCensus(max(StatusTopQueues, s.config().Admin.MetricsTopQueues))
	c.took = time.Since(c.at)
	c.next = c.at.Add(c.took + max(censusMaxAge, censusIdle*c.took))
	t.last.Store(c)
	t.walks.Add(1)
	return c
}

// takeCensus walks every session; t.walk is held. The census is not an
// atomic snapshot (nor was the walk it replaced): a session registered
// during the walk is counted, one removed during the walk may hide, from
// this census only, the session moved into its slot (listRemoveLocked),
// and a session replaced during the walk may be counted twice in the
// totals (never in the top queues).
func (s *Server) takeCensus(topN int) *census {
	c := &census{at: time.Now(), top: make([]QueueDepth, 0, topN)}
	t := &s.censuses
	for i := 0; ; i += censusChunk {
		s.mu.Lock()
		if i >= len(s.list) {
			s.mu.Unlock()
			break
		}
		t.chunk = append(t.chunk[:0], s.list[i:min(i+censusChunk, len(s.list))]...)
		s.mu.Unlock()
		for _, e := range t.chunk {
			c.count(e, topN)
		}
	}
	clear(t.chunk) // hold no session past the walk
	return c
}

// count adds one session to the census.
func (c *census) count(e *sessionEntry, topN int) {
	d := e.sess.Depth()
	if d.Online {
		c.online++
	} else {
		c.offline++
	}
	c.msgs += d.Messages
	c.bytes += d.Bytes
	c.fullest = max(c.fullest, d.Fill())
	if d.Messages == 0 || topN <= 0 {
		return
	}
	q := QueueDepth{ClientID: e.sess.ClientID(), Messages: d.Messages, Bytes: d.Bytes, Policy: d.Policy}
	if len(c.top) == topN && !deeper(q, c.top[len(c.top)-1]) {
		return
	}
	// A client ID appears once: a session replaced during the walk (a
	// clean start) may be met twice, and /metrics labels must be unique.
	if j := slices.IndexFunc(c.top, func(o QueueDepth) bool { return o.ClientID == q.ClientID }); j >= 0 {
		if !deeper(q, c.top[j]) {
			return
		}
		c.top = slices.Delete(c.top, j, j+1)
	}
	i, _ := slices.BinarySearchFunc(c.top, q, func(a, b QueueDepth) int {
		if deeper(a, b) {
			return -1
		}
		return 1
	})
	if len(c.top) == topN {
		c.top = c.top[:topN-1]
	}
	c.top = slices.Insert(c.top, i, q)
}

// deeper orders queues by messages, then bytes, then client ID, so that the
// list is the same for the same depths.
func deeper(a, b QueueDepth) bool {
	if a.Messages != b.Messages {
		return a.Messages > b.Messages
	}
	if a.Bytes != b.Bytes {
		return a.Bytes > b.Bytes
	}
	return strings.Compare(a.ClientID, b.ClientID) < 0
}

// listAddLocked appends e to the census list; s.mu is held.
func (s *Server) listAddLocked(e *sessionEntry) {
	e.idx = len(s.list)
	s.list = append(s.list, e)
}

// listRemoveLocked takes e out of the census list, moving the last entry
// into its slot; s.mu is held.
func (s *Server) listRemoveLocked(e *sessionEntry) {
	i := e.idx
	if i < 0 || i >= len(s.list) || s.list[i] != e {
		return
	}
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.list[i].idx = i
	s.list[last] = nil
	s.list = s.list[:last]
	e.idx = -1
}
