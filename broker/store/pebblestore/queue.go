package pebblestore

import (
	"fmt"

	"github.com/bollard-io/bollard/broker/store"
)

// ref returns the batch's view of message id, loading its count; nil when
// the message is neither stored nor put by the batch.
func (t *txn) ref(id uint64) (*refState, error) {
	if r, ok := t.refs[id]; ok {
		return r, nil
	}
	if c, ok := t.s.cache.refs[id]; ok {
		r := &refState{refs: c.refs, size: c.size, stored: true, oldRefs: c.refs, oldSize: c.size}
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
	r := &refState{refs: refs, size: size, stored: true, oldRefs: refs, oldSize: size}
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
		t.refs[m.ID] = &refState{put: m, size: m.Size()}
	case r.refs == 0 && r.put == nil:
		// Stored, but its last reference went earlier in this batch.
		r.put, r.size = m, m.Size()
	default:
		return fmt.Errorf("message %d already stored: %w", m.ID, store.ErrInvalid)
	}
	t.maxID = max(t.maxID, m.ID)
	return nil
}

// live returns message id if it exists for the batch: referenced, or put
// and waiting for its first reference.
func (t *txn) live(id uint64) (*refState, error) {
	r, err := t.ref(id)
	if err != nil {
		return nil, err
	}
	if r == nil || (r.refs == 0 && r.put == nil) {
		return nil, fmt.Errorf("message %d: %w", id, store.ErrNotFound)
	}
	return r, nil
}

func (t *txn) release(id uint64) error {
	r, err := t.live(id)
	if err != nil {
		return fmt.Errorf("queue entry names a missing message: %w: %w", store.ErrCorrupt, err)
	}
	r.refs--
	if r.refs == 0 {
		r.put = nil // a message put by this batch dies with its last reference
	}
	return nil
}

func (t *txn) enqueue(clientID string, e *store.QueueEntry) error {
	if e == nil {
		return fmt.Errorf("nil entry: %w", store.ErrInvalid)
	}
	si, err := t.mustSession(clientID)
	if err != nil {
		return err
	}
	if e.Seq <= si.lastSeq {
		return fmt.Errorf("queue %q: seq %d not after last seq %d: %w", clientID, e.Seq, si.lastSeq, store.ErrInvalid)
	}
	r, err := t.live(e.MessageID)
	if err != nil {
		return err
	}
	r.refs++
	si.lastSeq = e.Seq
	si.msgs++
	si.bytes += r.size
	// Set copies key and value: the scratch buffers are reused.
	t.kbuf = appendQueueKey(t.kbuf[:0], clientID, e.Seq)
	t.vbuf = appendEntry(t.vbuf[:0], e, r.size)
	return t.b.Set(t.kbuf, t.vbuf, nil)
}

// entry reads the entry with seq through the batch.
func (t *txn) entry(clientID string, seq uint64) (*sessInfo, storedEntry, error) {
	si := t.session(clientID)
	if si != nil {
		key := entKey{clientID, seq}
		if st, ok := t.ents[key]; ok {
			if !st.gone {
				return si, st.e, nil
			}
			return nil, storedEntry{}, fmt.Errorf("queue %q seq %d: %w", clientID, seq, store.ErrNotFound)
		}
		if !t.dropped[clientID] {
			if e, ok := t.s.cache.entry(clientID, seq); ok {
				return si, e, nil
			}
		}
		k := queueKey(clientID, seq)
		v, err := t.get(k)
		if err != nil {
			return nil, storedEntry{}, err
		}
		if v != nil {
			e, err := decodeEntry(k, seq, v)
			return si, e, err
		}
	}
	return nil, storedEntry{}, fmt.Errorf("queue %q seq %d: %w", clientID, seq, store.ErrNotFound)
}

func (t *txn) updateEntry(clientID string, upd *store.QueueEntry) error {
	if upd == nil {
		return fmt.Errorf("nil entry: %w", store.ErrInvalid)
	}
	_, e, err := t.entry(clientID, upd.Seq)
	if err != nil {
		return err
	}
	e.State, e.PacketID, e.QoS, e.Retain = upd.State, upd.PacketID, upd.QoS, upd.Retain
	t.ents[entKey{clientID, upd.Seq}] = entState{e: e}
	t.modified[clientID] = true
	return t.b.Set(queueKey(clientID, upd.Seq), encodeEntry(&e.QueueEntry, e.Size), nil)
}

func (t *txn) dequeue(clientID string, seq uint64) error {
	si, e, err := t.entry(clientID, seq)
	if err != nil {
		return err
	}
	si.msgs--
	si.bytes -= e.Size
	if seq == si.lastSeq {
		t.tailGone = append(t.tailGone, clientID)
	}
	if err := t.release(e.MessageID); err != nil {
		return err
	}
	t.ents[entKey{clientID, seq}] = entState{gone: true}
	t.modified[clientID] = true
	return t.b.Delete(queueKey(clientID, seq), nil)
}

// finish writes what the operations left to the end: message bodies and
// reference counts (once per message), LastSeq floors, the message ID
// mark, and the store stats.
func (t *txn) finish() error {
	for id, r := range t.refs {
		if err := t.finishMessage(id, r); err != nil {
			return err
		}
	}
	for _, id := range t.tailGone {
		si := t.sess[id]
		if si == nil || si.lastSeq == si.floor {
			continue
		}
		// A later enqueue of the batch may have made a new tail.
		tail, err := t.exists(queueKey(id, si.lastSeq))
		if err != nil {
			return err
		}
		if !tail {
			si.floor = si.lastSeq
			if err := t.b.Set(floorKey(id), encodeUvarint(si.floor), nil); err != nil {
				return err
			}
		}
	}
	if t.maxID >= t.s.idMark {
		if err := t.b.Set(keyMsgID, be64(t.maxID+idReserve), nil); err != nil {
			return err
		}
	}
	return nil
}

func (t *txn) finishMessage(id uint64, r *refState) error {
	was, is := r.stored, r.refs > 0
	if was {
		t.stats.Messages--
		t.stats.Bytes -= r.oldSize
	}
	if is {
		t.stats.Messages++
		t.stats.Bytes += r.size
	}
	switch {
	case !is && was:
		return errJoin(t.b.Delete(messageKey(id), nil), t.b.Delete(refCountKey(id), nil))
	case !is:
		return nil // put but never referenced: not stored
	}
	if r.put != nil {
		if err := t.b.Set(messageKey(id), encodeMessageValue(r.put), nil); err != nil {
			return err
		}
	}
	if r.refs == r.oldRefs && r.size == r.oldSize && r.put == nil {
		return nil
	}
	return t.b.Set(refCountKey(id), encodeRefCount(r.refs, r.size), nil)
}

func errJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// publish makes the batch's effects visible in memory; s.mu is held and
// the batch is in the memtable.
func (t *txn) publish() {
	c := &t.s.cache
	c.gen++
	for id := range t.dropped {
		c.dropSession(id)
	}
	for k, st := range t.ents {
		switch {
		case t.dropped[k.clientID]:
		case st.gone:
			c.dropEntry(k.clientID, k.seq)
		default:
			c.putEntry(k.clientID, st.e)
		}
	}
	for id := range t.modified {
		if si := t.sess[id]; si != nil {
			si.modGen = c.gen
		}
	}
	for id, r := range t.refs {
		if r.refs > 0 {
			c.putRef(id, refCount{r.refs, r.size})
		} else {
			delete(c.refs, id)
		}
	}
	for id, si := range t.sess {
		if si == nil {
			delete(t.s.sessions, id)
		} else {
			t.s.sessions[id] = si
		}
	}
	t.s.stats = t.stats
	t.s.maxStored = max(t.s.maxStored, t.maxID)
	if t.maxID >= t.s.idMark {
		t.s.idMark = t.maxID + idReserve
	}
	for {
		cur := t.s.nextID.Load()
		if cur >= t.maxID || t.s.nextID.CompareAndSwap(cur, t.maxID) {
			break
		}
	}
}
