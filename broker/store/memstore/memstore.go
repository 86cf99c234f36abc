package memstore

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/bollard-io/bollard/broker/store"
)

// readChunk is how many queue entries ReadQueue copies per lock
// acquisition; fn is always called without the lock held, so it may call
// back into the store.
const readChunk = 128

// Store is an in-memory store.Store. The zero value is not usable; call New.
type Store struct {
	nextID atomic.Uint64

	mu       sync.RWMutex
	closed   bool
	sessions map[string]*session
	messages map[uint64]*message
	retained map[string]*store.Message
	stats    store.Stats
}

type session struct {
	rec     store.Session
	subs    map[string]store.Subscription
	inbound map[uint16]struct{}
	q       queue
}

type message struct {
	m    *store.Message
	size int64
	refs int
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		sessions: make(map[string]*session),
		messages: make(map[uint64]*message),
		retained: make(map[string]*store.Message),
	}
}

// NextMessageID returns a new message ID; IDs start at 1.
func (s *Store) NextMessageID() uint64 { return s.nextID.Add(1) }

// Stats summarises the store.
func (s *Store) Stats() store.Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.stats
}

// Close marks the store closed; later calls return store.ErrClosed.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.closed = true
	return nil
}

// LoadSessions calls fn for every session, in client ID order, with copies
// taken under one read lock.
func (s *Store) LoadSessions(fn func(*store.SessionState) error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	states := make([]*store.SessionState, 0, len(s.sessions))
	for _, ss := range s.sessions {
		states = append(states, ss.state())
	}
	s.mu.RUnlock()
	sort.Slice(states, func(i, j int) bool { return states[i].Session.ClientID < states[j].Session.ClientID })
	for _, st := range states {
		if err := fn(st); err != nil {
			return err
		}
	}
	return nil
}

func (ss *session) state() *store.SessionState {
	st := &store.SessionState{
		Session: cloneSession(&ss.rec),
		Queue:   store.QueueStats{Messages: int64(ss.q.live), Bytes: ss.q.bytes, LastSeq: ss.q.lastSeq},
	}
	for _, sub := range ss.subs {
		st.Subscriptions = append(st.Subscriptions, sub)
	}
	sort.Slice(st.Subscriptions, func(i, j int) bool { return st.Subscriptions[i].Filter < st.Subscriptions[j].Filter })
	for pid := range ss.inbound {
		st.InboundQoS2 = append(st.InboundQoS2, pid)
	}
	sort.Slice(st.InboundQoS2, func(i, j int) bool { return st.InboundQoS2[i] < st.InboundQoS2[j] })
	return st
}

// LoadRetained calls fn for every retained message, in topic order.
func (s *Store) LoadRetained(fn func(*store.Message) error) error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return store.ErrClosed
	}
	msgs := make([]*store.Message, 0, len(s.retained))
	for _, m := range s.retained {
		msgs = append(msgs, cloneMessage(m))
	}
	s.mu.RUnlock()
	sort.Slice(msgs, func(i, j int) bool { return msgs[i].Topic < msgs[j].Topic })
	for _, m := range msgs {
		if err := fn(m); err != nil {
			return err
		}
	}
	return nil
}

// ReadQueue calls fn with clientID's entries after afterSeq, in Seq order.
// An unknown session has an empty queue.
func (s *Store) ReadQueue(clientID string, afterSeq uint64, limit int, fn func(store.QueueEntry, *store.Message) bool) error {
	return store.ReadPaged(afterSeq, limit, readChunk, func(after uint64, n int) ([]store.QueueItem, error) {
		return s.readChunk(clientID, after, n)
	}, func(it *store.QueueItem) bool { return fn(it.Entry, it.Message) })
}

// ReadQueueEntries is ReadQueue without the messages.
func (s *Store) ReadQueueEntries(clientID string, afterSeq uint64, limit int, fn func(store.QueueEntry, int64) bool) error {
	return store.ReadPaged(afterSeq, limit, readChunk, func(after uint64, n int) ([]store.QueueSize, error) {
		var items []store.QueueSize
		err := s.readEach(clientID, after, n, func(e *store.QueueEntry, m *store.Message) {
			items = append(items, store.QueueSize{Entry: cloneEntry(e), Size: m.Size()})
		})
		return items, err
	}, func(it *store.QueueSize) bool { return fn(it.Entry, it.Size) })
}

func (s *Store) readChunk(clientID string, afterSeq uint64, n int) ([]store.QueueItem, error) {
	var items []store.QueueItem
	err := s.readEach(clientID, afterSeq, n, func(e *store.QueueEntry, m *store.Message) {
		items = append(items, store.QueueItem{Entry: cloneEntry(e), Message: cloneMessage(m)})
	})
	return items, err
}

// readEach calls fn, under the read lock, with at most n live entries of
// clientID after afterSeq and their messages, which fn must not keep.
func (s *Store) readEach(clientID string, afterSeq uint64, n int, fn func(*store.QueueEntry, *store.Message)) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return store.ErrClosed
	}
	ss := s.sessions[clientID]
	if ss == nil {
		return nil
	}
	ents := ss.q.ents
	i := sort.Search(len(ents), func(i int) bool { return ents[i].e.Seq > afterSeq })
	for read := 0; i < len(ents) && read < n; i++ {
		if ents[i].dead {
			continue
		}
		m := s.messages[ents[i].e.MessageID]
		if m == nil {
			return fmt.Errorf("memstore: queue %q seq %d: message %d missing: %w", clientID, ents[i].e.Seq, ents[i].e.MessageID, store.ErrCorrupt)
		}
		fn(&ents[i].e, m.m)
		read++
	}
	return nil
}

// Commit applies b atomically: on the first invalid operation everything
// the batch changed so far is undone.
func (s *Store) Commit(ctx context.Context, b *store.Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("memstore: commit: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	tx := &txn{s: s, stats: s.stats}
	for i := range b.Ops {
		op := &b.Ops[i]
		if err := tx.apply(op); err != nil {
			tx.rollback()
			return fmt.Errorf("memstore: commit: op %d (%v): %w", i, op.Kind, err)
		}
	}
	for _, ss := range tx.touched {
		ss.q.compact()
	}
	return nil
}
