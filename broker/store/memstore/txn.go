package memstore

import (
	"fmt"

	"github.com/bollard-io/bollard/broker/store"
)

// txn applies one batch to the live maps under the write lock, recording
// an undo step for every change so that a failing operation can roll the
// whole batch back.
type txn struct {
	s       *Store
	stats   store.Stats // to restore on rollback
	undo    []func()
	pending map[uint64]*message // put in this batch, not yet referenced
	put     map[uint64]bool     // IDs put in this batch
	touched []*session          // queues to compact after success
}

func (t *txn) onUndo(f func()) { t.undo = append(t.undo, f) }

func (t *txn) rollback() {
	for i := len(t.undo) - 1; i >= 0; i-- {
		t.undo[i]()
	}
	t.s.stats = t.stats
}

func (t *txn) apply(op *store.Op) error {
	switch op.Kind {
	case store.OpPutSession:
		return t.putSession(op.Session)
	case store.OpDeleteSession:
		t.deleteSession(op.ClientID)
		return nil
	case store.OpPutSubscription:
		return t.putSubscription(op.ClientID, op.Subscription)
	case store.OpDeleteSubscription:
		t.deleteSubscription(op.ClientID, op.Filter)
		return nil
	case store.OpPutMessage:
		return t.putMessage(op.Message)
	case store.OpEnqueue:
		return t.enqueue(op.ClientID, op.Entry)
	case store.OpUpdateEntry:
		return t.updateEntry(op.ClientID, op.Entry)
	case store.OpDequeue:
		return t.dequeue(op.ClientID, op.Seq)
	case store.OpPutInboundQoS2:
		return t.putInbound(op.ClientID, op.PacketID)
	case store.OpDeleteInboundQoS2:
		t.deleteInbound(op.ClientID, op.PacketID)
		return nil
	case store.OpPutRetained:
		return t.putRetained(op.Message)
	case store.OpDeleteRetained:
		t.deleteRetained(op.Topic)
		return nil
	}
	return fmt.Errorf("unknown op kind %d: %w", op.Kind, store.ErrInvalid)
}

func (t *txn) session(clientID string) (*session, error) {
	ss := t.s.sessions[clientID]
	if ss == nil {
		return nil, fmt.Errorf("session %q: %w", clientID, store.ErrNotFound)
	}
	return ss, nil
}

func (t *txn) putSession(rec *store.Session) error {
	if rec == nil {
		return fmt.Errorf("nil session: %w", store.ErrInvalid)
	}
	if ss := t.s.sessions[rec.ClientID]; ss != nil {
		old := ss.rec
		ss.rec = cloneSession(rec)
		t.onUndo(func() { ss.rec = old })
		return nil
	}
	ss := &session{
		rec:     cloneSession(rec),
		subs:    make(map[string]store.Subscription),
		inbound: make(map[uint16]struct{}),
	}
	t.s.sessions[rec.ClientID] = ss
	t.s.stats.Sessions++
	t.onUndo(func() { delete(t.s.sessions, rec.ClientID) })
	return nil
}

func (t *txn) deleteSession(clientID string) {
	ss := t.s.sessions[clientID]
	if ss == nil {
		return
	}
	delete(t.s.sessions, clientID)
	t.s.stats.Sessions--
	t.onUndo(func() { t.s.sessions[clientID] = ss })
	for _, e := range ss.q.ents {
		if !e.dead {
			t.release(e.e.MessageID)
		}
	}
}

func (t *txn) putSubscription(clientID string, sub *store.Subscription) error {
	if sub == nil {
		return fmt.Errorf("nil subscription: %w", store.ErrInvalid)
	}
	ss, err := t.session(clientID)
	if err != nil {
		return err
	}
	old, had := ss.subs[sub.Filter]
	ss.subs[sub.Filter] = *sub
	t.onUndo(func() {
		if had {
			ss.subs[sub.Filter] = old
		} else {
			delete(ss.subs, sub.Filter)
		}
	})
	return nil
}

func (t *txn) deleteSubscription(clientID, filter string) {
	ss := t.s.sessions[clientID]
	if ss == nil {
		return
	}
	if old, had := ss.subs[filter]; had {
		delete(ss.subs, filter)
		t.onUndo(func() { ss.subs[filter] = old })
	}
}

func (t *txn) putMessage(m *store.Message) error {
	if m == nil || m.ID == 0 {
		return fmt.Errorf("message without ID: %w", store.ErrInvalid)
	}
	if t.s.messages[m.ID] != nil || t.pending[m.ID] != nil {
		return fmt.Errorf("message %d already stored: %w", m.ID, store.ErrInvalid)
	}
	if t.pending == nil {
		t.pending = make(map[uint64]*message)
	}
	t.pending[m.ID] = &message{m: cloneMessage(m), size: m.Size()}
	if t.put == nil {
		t.put = make(map[uint64]bool)
	}
	t.put[m.ID] = true
	return nil
}

// ref adds a reference to message id, storing it if it was only pending.
// Only a message put by this batch may gain references (see
// store.OpEnqueue).
func (t *txn) ref(id uint64) (*message, error) {
	if !t.put[id] {
		return nil, fmt.Errorf("message %d not put by this batch: %w", id, store.ErrNotFound)
	}
	if m := t.s.messages[id]; m != nil {
		m.refs++
		t.onUndo(func() { m.refs-- })
		return m, nil
	}
	m := t.pending[id]
	if m == nil {
		return nil, fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	delete(t.pending, id)
	m.refs = 1
	t.s.messages[id] = m
	t.s.stats.Messages++
	t.s.stats.Bytes += m.size
	t.onUndo(func() { delete(t.s.messages, id) })
	return m, nil
}

// release drops a reference to message id, deleting it with the last one.
func (t *txn) release(id uint64) {
	m := t.s.messages[id]
	if m == nil {
		return // cannot happen: entries always reference stored messages
	}
	m.refs--
	t.onUndo(func() { m.refs++ })
	if m.refs == 0 {
		delete(t.s.messages, id)
		t.s.stats.Messages--
		t.s.stats.Bytes -= m.size
		t.onUndo(func() { t.s.messages[id] = m })
	}
}

func (t *txn) enqueue(clientID string, e *store.QueueEntry) error {
	if e == nil {
		return fmt.Errorf("nil entry: %w", store.ErrInvalid)
	}
	ss, err := t.session(clientID)
	if err != nil {
		return err
	}
	if e.Seq <= ss.q.lastSeq {
		return fmt.Errorf("queue %q: seq %d not after last seq %d: %w", clientID, e.Seq, ss.q.lastSeq, store.ErrInvalid)
	}
	m, err := t.ref(e.MessageID)
	if err != nil {
		return err
	}
	prev := ss.q.lastSeq
	ss.q.push(cloneEntry(e), m.size)
	t.onUndo(func() { ss.q.pop(prev) })
	t.touched = append(t.touched, ss)
	return nil
}

func (t *txn) entry(clientID string, seq uint64) (*session, int, error) {
	ss := t.s.sessions[clientID]
	if ss != nil {
		if i := ss.q.find(seq); i >= 0 {
			return ss, i, nil
		}
	}
	return nil, 0, fmt.Errorf("queue %q seq %d: %w", clientID, seq, store.ErrNotFound)
}

func (t *txn) updateEntry(clientID string, e *store.QueueEntry) error {
	if e == nil {
		return fmt.Errorf("nil entry: %w", store.ErrInvalid)
	}
	ss, i, err := t.entry(clientID, e.Seq)
	if err != nil {
		return err
	}
	p := &ss.q.ents[i].e
	old := *p
	p.State, p.PacketID, p.QoS, p.Retain = e.State, e.PacketID, e.QoS, e.Retain
	// Undo by Seq, not through p: a later Enqueue of the batch may have
	// moved the queue to a new array (its undo pops it, not moves back).
	t.onUndo(func() {
		if ss, j, err := t.entry(clientID, old.Seq); err == nil {
			ss.q.ents[j].e = old
		}
	})
	return nil
}

func (t *txn) dequeue(clientID string, seq uint64) error {
	ss, i, err := t.entry(clientID, seq)
	if err != nil {
		return err
	}
	id := ss.q.ents[i].e.MessageID
	ss.q.kill(i)
	t.onUndo(func() { ss.q.revive(seq) })
	t.touched = append(t.touched, ss)
	t.release(id)
	return nil
}

func (t *txn) putInbound(clientID string, pid uint16) error {
	ss, err := t.session(clientID)
	if err != nil {
		return err
	}
	if _, had := ss.inbound[pid]; !had {
		ss.inbound[pid] = struct{}{}
		t.onUndo(func() { delete(ss.inbound, pid) })
	}
	return nil
}

func (t *txn) deleteInbound(clientID string, pid uint16) {
	ss := t.s.sessions[clientID]
	if ss == nil {
		return
	}
	if _, had := ss.inbound[pid]; had {
		delete(ss.inbound, pid)
		t.onUndo(func() { ss.inbound[pid] = struct{}{} })
	}
}

func (t *txn) putRetained(m *store.Message) error {
	if m == nil {
		return fmt.Errorf("nil retained message: %w", store.ErrInvalid)
	}
	old := t.s.retained[m.Topic]
	t.s.retained[m.Topic] = cloneMessage(m)
	if old == nil {
		t.s.stats.Retained++
	}
	t.onUndo(func() { t.restoreRetained(m.Topic, old) })
	return nil
}

func (t *txn) deleteRetained(topic string) {
	old := t.s.retained[topic]
	if old == nil {
		return
	}
	delete(t.s.retained, topic)
	t.s.stats.Retained--
	t.onUndo(func() { t.restoreRetained(topic, old) })
}

func (t *txn) restoreRetained(topic string, old *store.Message) {
	if old == nil {
		delete(t.s.retained, topic)
	} else {
		t.s.retained[topic] = old
	}
}
