package pebblestore

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/bollard-io/bollard/broker/store"
)

// txnQueue is a batch's view of one session's queue: the runs it loaded
// (copies it may change) and the entries it appended, which finish writes
// as new runs.
type txnQueue struct {
	runs []*txnRun
	// head and tail index t.added, which holds the entries the batch
	// appended to every session; each links to its session's next one
	// (-1 ends the list). cur is where the last lookup found an entry:
	// lookups mostly move forward.
	head, tail, cur int32
	// tailGone: the batch removed the entry at the session's LastSeq and
	// appended none after it, so the l/ floor may need writing.
	tailGone bool
}

// addedEnt is an entry the batch appended: the caller's entry (replaced
// by a copy before the batch changes it) and its message's size.
type addedEnt struct {
	e    *store.QueueEntry
	size int64
	ref  *refState // its message
	next int32     // the session's next added entry in t.added, -1: none
	gone bool      // dequeued again by the batch
}

type txnRun struct {
	*run
	dirty bool
}

// queue returns the batch's view of clientID's queue.
func (t *txn) queue(clientID string) *txnQueue {
	q := t.queues[clientID]
	if q == nil {
		q = t.queueSlab.get()
		q.head, q.tail, q.cur = -1, -1, -1
		t.queues[clientID] = q
	}
	return q
}

func (t *txn) newRef() *refState { return t.refSlab.get() }

// ref returns the batch's view of message id, loading its count; nil when
// the message is neither stored in m/ nor put by the batch.
func (t *txn) ref(id uint64) (*refState, error) {
	if r, ok := t.refs[id]; ok {
		return r, nil
	}
	if c, ok := t.s.cache.refs[id]; ok {
		r := t.newRef()
		*r = refState{refs: c.refs, size: c.size, stored: true, oldRefs: c.refs, oldSize: c.size}
		t.refs[id] = r
		return r, nil
	}
	k := refCountKey(id)
	v, err := t.get(k)
	if err != nil || v == nil {
		return nil, err
	}
	refs, size, err := decodeRefCount(k, v)
	if err != nil {
		return nil, err
	}
	r := t.newRef()
	*r = refState{refs: refs, size: size, stored: true, oldRefs: refs, oldSize: size}
	t.refs[id] = r
	return r, nil
}

func (t *txn) putMessage(m *store.Message) error {
	if m == nil || m.ID == 0 {
		return fmt.Errorf("message without ID: %w", store.ErrInvalid)
	}
	var r *refState
	if m.ID <= t.s.maxStored {
		var err error
		if r, err = t.ref(m.ID); err != nil {
			return err
		}
	} else {
		// Above every ID ever stored: no need to look it up.
		r = t.refs[m.ID]
	}
	switch {
	case r == nil:
		r = t.newRef()
		r.put, r.size = m, m.Size()
		t.refs[m.ID] = r
	case r.refs == 0 && r.put == nil:
		// Stored, but its last reference went earlier in this batch.
		r.put, r.size = m, m.Size()
	default:
		return fmt.Errorf("message %d already stored: %w", m.ID, store.ErrInvalid)
	}
	t.maxID = max(t.maxID, m.ID)
	t.lastPutID, t.lastPut = m.ID, r
	return nil
}

// release drops one reference to the m/ message id (or to a message put
// by this batch).
func (t *txn) release(id uint64) error {
	r, err := t.ref(id)
	if err != nil {
		return err
	}
	if r == nil || (r.refs == 0 && r.put == nil) {
		return fmt.Errorf("queue entry names a missing message %d: %w", id, store.ErrCorrupt)
	}
	r.refs--
	if r.refs == 0 {
		r.put = nil // a message put by this batch dies with its last reference
	}
	return nil
}

// releaseEntry releases what entry e holds: its reference, or its inline
// message.
func (t *txn) releaseEntry(e *qent) error {
	if e.mraw != nil {
		t.stats.Messages--
		t.stats.Bytes -= e.size
		return nil
	}
	return t.release(e.MessageID)
}

func (t *txn) enqueue(clientID string, e *store.QueueEntry) error {
	if e == nil {
		return fmt.Errorf("nil entry: %w", store.ErrInvalid)
	}
	si, q, err := t.fanView(clientID, e.MessageID)
	if err != nil {
		return err
	}
	if e.Seq <= si.lastSeq {
		return fmt.Errorf("queue %q: seq %d not after last seq %d: %w", clientID, e.Seq, si.lastSeq, store.ErrInvalid)
	}
	// The message must be put by this batch: every reference to a message
	// is created with it, which lets a message with one reference live
	// inside its entry.
	r := t.lastPut
	if e.MessageID != t.lastPutID || r == nil {
		r = t.refs[e.MessageID]
	}
	if r == nil || r.put == nil {
		return fmt.Errorf("message %d not put by this batch: %w", e.MessageID, store.ErrNotFound)
	}
	r.refs++
	si.lastSeq = e.Seq
	si.msgs++
	si.bytes += r.size
	q.tailGone = false
	i := int32(len(t.added))
	t.added = append(t.added, addedEnt{e: e, size: r.size, ref: r, next: -1})
	if q.tail >= 0 {
		t.added[q.tail].next = i
	} else {
		q.head = i
	}
	q.tail = i
	return nil
}

// fanout finds the batch's views of a fan-out's sessions without looking
// each up in two maps. The messages of a fan-out are queued to the same
// sessions in the same order, one message after the other (one publisher's
// messages to the same subscribers, or a follower decoding a log entry's
// repeat items), so the sessions of the last message, in order, are
// mostly those of the next: each is then found with one comparison of
// client IDs (equal strings that share their bytes, as a batch's and a
// decoded entry's do, compare by pointer).
type fanout struct {
	fan    []fanned // the last fan-out's sessions, in order
	next   int      // where the next session is expected in fan
	fanRec []fanned // the current fan-out's once it left fan's order, else empty
	msg    uint64   // the current fan-out's message
}

// fanned is a session of a fan-out and the batch's views of it.
type fanned struct {
	id string
	si *sessInfo
	q  *txnQueue
}

// forget drops every view fanout holds: a session was put or deleted, so
// a view may be stale. (The slices keep their room.)
func (f *fanout) forget() {
	clear(f.fan)
	clear(f.fanRec)
	f.fan, f.fanRec, f.next, f.msg = f.fan[:0], f.fanRec[:0], 0, 0
}

// fanView returns the batch's views of clientID's session (which must
// exist) and queue, for an entry of message msg.
func (t *txn) fanView(clientID string, msg uint64) (*sessInfo, *txnQueue, error) {
	f := &t.views
	if msg != f.msg {
		if len(f.fanRec) > 0 {
			f.fan, f.fanRec = f.fanRec, f.fan[:0]
		}
		f.msg, f.next = msg, 0
	}
	if len(f.fanRec) == 0 && f.next < len(f.fan) && f.fan[f.next].id == clientID {
		v := &f.fan[f.next]
		f.next++
		return v.si, v.q, nil
	}
	si, err := t.mustSession(clientID)
	if err != nil {
		return nil, nil, err
	}
	q := t.queue(clientID)
	if len(f.fanRec) == 0 {
		f.fanRec = append(f.fanRec, f.fan[:f.next]...)
	}
	f.fanRec = append(f.fanRec, fanned{id: clientID, si: si, q: q})
	return si, q, nil
}

// where locates an entry for the batch: at index i of run's entries, or
// of t.added when run is nil.
type where struct {
	q   *txnQueue
	run *txnRun
	i   int32
}

// find locates the entry with seq of clientID's queue.
func (t *txn) find(clientID string, seq uint64) (*sessInfo, where, error) {
	si := t.session(clientID)
	if si == nil {
		return nil, where{}, fmt.Errorf("queue %q seq %d: %w", clientID, seq, store.ErrNotFound)
	}
	q := t.queue(clientID)
	if q.head >= 0 && seq >= t.added[q.head].e.Seq {
		i := q.head
		if q.cur >= 0 && t.added[q.cur].e.Seq <= seq {
			i = q.cur
		}
		for ; i >= 0 && t.added[i].e.Seq <= seq; i = t.added[i].next {
			if a := &t.added[i]; a.e.Seq == seq && !a.gone {
				q.cur = i
				return si, where{q: q, i: i}, nil
			}
		}
		return nil, where{}, fmt.Errorf("queue %q seq %d: %w", clientID, seq, store.ErrNotFound)
	}
	for _, r := range q.runs {
		if r.first <= seq && seq <= r.last() {
			if i := r.index(seq); i >= 0 {
				return si, where{q: q, run: r, i: int32(i)}, nil
			}
			return nil, where{}, fmt.Errorf("queue %q seq %d: %w", clientID, seq, store.ErrNotFound)
		}
	}
	r, err := t.loadRun(clientID, seq)
	if err != nil {
		return nil, where{}, err
	}
	if r != nil {
		for _, have := range q.runs {
			if have.first == r.first {
				// The run is loaded, seq is past its end or was removed.
				return nil, where{}, fmt.Errorf("queue %q seq %d: %w", clientID, seq, store.ErrNotFound)
			}
		}
		tr := &txnRun{run: r}
		q.runs = append(q.runs, tr)
		if i := r.index(seq); i >= 0 {
			return si, where{q: q, run: tr, i: int32(i)}, nil
		}
	}
	return nil, where{}, fmt.Errorf("queue %q seq %d: %w", clientID, seq, store.ErrNotFound)
}

// loadRun returns a copy of the stored run that may hold seq (the one
// with the highest key seq <= seq), nil when there is none: from the
// cache, or read through the batch.
func (t *txn) loadRun(clientID string, seq uint64) (*run, error) {
	if t.dropped[clientID] {
		// Deleted earlier in the batch: its stored runs are gone, and the
		// runs of entries added since are written only by finish.
		return nil, nil
	}
	if r := t.s.cache.run(clientID, seq); r != nil {
		return r.clone(), nil
	}
	it, err := t.s.db.NewIter(&pebble.IterOptions{LowerBound: clientPrefix(pQueue, clientID), UpperBound: queueKey(clientID, seq+1)})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: read queue %q: %w", clientID, err)
	}
	defer it.Close()
	if !it.Last() {
		if err := it.Error(); err != nil {
			return nil, readErr(queueKey(clientID, seq), err)
		}
		return nil, nil
	}
	return runAt(it, true)
}

// runAt decodes the run under it; with keep, the value is copied first.
func runAt(it *pebble.Iterator, keep bool) (*run, error) {
	k := it.Key()
	_, first, err := queueKeyParts(k)
	if err != nil {
		return nil, err
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return nil, readErr(k, err)
	}
	if keep {
		v = append([]byte(nil), v...)
	}
	r, _, err := decodeRun(k, first, v, keep)
	return r, err
}

func (t *txn) updateEntry(clientID string, upd *store.QueueEntry) error {
	if upd == nil {
		return fmt.Errorf("nil entry: %w", store.ErrInvalid)
	}
	_, w, err := t.find(clientID, upd.Seq)
	if err != nil {
		return err
	}
	if w.run == nil {
		a := &t.added[w.i]
		c := *a.e
		c.State, c.PacketID, c.QoS, c.Retain = upd.State, upd.PacketID, upd.QoS, upd.Retain
		a.e = &c
		return nil
	}
	e := &w.run.ents[w.i]
	e.State, e.PacketID, e.QoS, e.Retain = upd.State, upd.PacketID, upd.QoS, upd.Retain
	w.run.dirty = true
	t.modified[clientID] = true
	return nil
}

func (t *txn) dequeue(clientID string, seq uint64) error {
	si, w, err := t.find(clientID, seq)
	if err != nil {
		return err
	}
	if seq == si.lastSeq {
		w.q.tailGone = true
	}
	if w.run == nil {
		a := &t.added[w.i]
		a.gone = true
		si.msgs--
		si.bytes -= a.size
		return t.release(a.e.MessageID)
	}
	e := w.run.ents[w.i]
	si.msgs--
	si.bytes -= e.size
	if err := t.releaseEntry(&e); err != nil {
		return err
	}
	w.run.ents = append(w.run.ents[:w.i], w.run.ents[w.i+1:]...)
	w.run.dirty = true
	t.modified[clientID] = true
	return nil
}

// releaseQueue releases every entry of clientID's queue as the batch sees
// it, before the session is deleted.
func (t *txn) releaseQueue(clientID string) error {
	q := t.queue(clientID)
	for i := q.head; i >= 0; i = t.added[i].next {
		if a := &t.added[i]; !a.gone {
			if err := t.release(a.e.MessageID); err != nil {
				return err
			}
		}
	}
	loaded := make(map[uint64]*txnRun, len(q.runs))
	for _, r := range q.runs {
		loaded[r.first] = r
	}
	if t.dropped[clientID] {
		return nil // deleted before in this batch: no stored runs left
	}
	return scan(t.s.db, clientPrefix(pQueue, clientID), func(k, v []byte) error {
		_, first, err := queueKeyParts(k)
		if err != nil {
			return err
		}
		r := loaded[first]
		if r == nil {
			dr, _, err := decodeRun(k, first, v, true)
			if err != nil {
				return err
			}
			r = &txnRun{run: dr}
		}
		for i := range r.ents {
			if err := t.releaseEntry(&r.ents[i]); err != nil {
				return err
			}
		}
		return nil
	})
}

// finishQueues writes the runs the batch changed and the runs of the
// entries it added. An added entry whose message the batch put and that
// is its only reference holds the message inline.
func (t *txn) finishQueues() error {
	for id, q := range t.queues {
		si := t.sess[id]
		if si == nil {
			continue // deleted: its runs went with a range deletion
		}
		for _, r := range q.runs {
			if !r.dirty {
				continue
			}
			t.kbuf = appendQueueKey(t.kbuf[:0], id, r.first)
			var err error
			if len(r.ents) == 0 {
				err = t.b.Delete(t.kbuf, nil)
			} else {
				t.vbuf = appendRun(t.vbuf[:0], r.first, r.ents)
				err = t.b.Set(t.kbuf, t.vbuf, nil)
			}
			if err != nil {
				return err
			}
		}
		if err := t.writeAdded(id, q.head); err != nil {
			return err
		}
		if q.tailGone && si.lastSeq != si.floor {
			si.floor = si.lastSeq
			if err := t.b.Set(floorKey(id), encodeUvarint(si.floor), nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// writeAdded writes the entries the batch appended to clientID's queue,
// the list starting at t.added[head], as runs of at most maxRunEntries
// entries and about maxRunBytes.
func (t *txn) writeAdded(clientID string, head int32) error {
	i := head
	for i >= 0 && t.added[i].gone {
		i = t.added[i].next
	}
	for i >= 0 {
		first := t.added[i].e.Seq
		body := enc{b: t.ebuf[:0]}
		prev, n := first, 0
		for ; i >= 0 && n < maxRunEntries && len(body.b) < maxRunBytes; i = t.added[i].next {
			a := &t.added[i]
			if a.gone {
				continue
			}
			var mraw []byte
			m := a.ref.inline()
			if m != nil {
				t.mbuf = appendInline(t.mbuf[:0], m)
				mraw = t.mbuf
			}
			appendQent(&body, prev, a.e, a.size, mraw, m != nil)
			prev = a.e.Seq
			n++
		}
		t.ebuf = body.b
		v := enc{b: append(t.vbuf[:0], valueVersion)}
		v.uvarint(uint64(n))
		t.vbuf = append(v.b, body.b...)
		t.kbuf = appendQueueKey(t.kbuf[:0], clientID, first)
		if err := t.b.Set(t.kbuf, t.vbuf, nil); err != nil {
			return err
		}
		for i >= 0 && t.added[i].gone {
			i = t.added[i].next
		}
	}
	return nil
}
