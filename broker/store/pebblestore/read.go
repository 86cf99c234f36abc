package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/bollard-io/bollard/broker/store"
)

// readChunk is how many queue entries ReadQueue reads per snapshot; fn is
// called with no Pebble snapshot or iterator open, so a slow consumer pins
// nothing and may commit from fn.
const readChunk = 128

// LoadSessions calls fn for every session in client ID order, from one
// consistent snapshot, reusing one SessionState (see store.Store). The subscriptions and inbound QoS 2 IDs are read by
// one iterator per family that walks in step with the sessions (their keys
// come in client ID order too), not by two iterators per session: opening
// an iterator costs more than reading a key, and a fleet has a million
// sessions.
func (s *Store) LoadSessions(fn func(*store.SessionState) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	s.mu.Lock()
	snap := s.db.NewSnapshot()
	queues := make(map[string]store.QueueStats) // only the sessions that ever queued
	for id, si := range s.sessions {
		if si.msgs != 0 || si.bytes != 0 || si.lastSeq != 0 {
			queues[id] = store.QueueStats{Messages: si.msgs, Bytes: si.bytes, LastSeq: si.lastSeq}
		}
	}
	s.mu.Unlock()
	defer snap.Close()
	subs, err := newOwnedIter(snap, pSub)
	if err != nil {
		return err
	}
	inbound, err := newOwnedIter(snap, pInbound)
	if err != nil {
		return errors.Join(err, subs.close())
	}
	// One SessionState and its slices serve every session (fn keeps none
	// of them): a fleet's recovery allocates only what the sessions keep.
	var st store.SessionState
	err = scan(snap, []byte(pSession), func(k, v []byte) error {
		sess, err := decodeSession(k, v)
		if err != nil {
			return err
		}
		clear(st.Subscriptions)
		st = store.SessionState{Session: sess, Queue: queues[sess.ClientID],
			Subscriptions: st.Subscriptions[:0], InboundQoS2: st.InboundQoS2[:0]}
		if err := loadOwned(subs, inbound, k[len(pSession):], &st); err != nil {
			return err
		}
		return fn(&st)
	})
	return errors.Join(err, subs.close(), inbound.close())
}

// loadOwned reads the subscriptions and inbound QoS 2 IDs of st's session,
// whose client ID is id.
func loadOwned(subs, inbound *ownedIter, id []byte, st *store.SessionState) error {
	err := subs.each(id, func(k, rest, v []byte) error {
		sub, err := decodeSubscription(k, string(rest), v)
		st.Subscriptions = append(st.Subscriptions, sub)
		return err
	})
	if err != nil {
		return err
	}
	return inbound.each(id, func(k, rest, _ []byte) error {
		if len(rest) != 2 {
			return corrupt(k, "malformed key")
		}
		st.InboundQoS2 = append(st.InboundQoS2, binary.BigEndian.Uint16(rest))
		return nil
	})
}

// ownedIter walks a per-client family ("<family><clientID>\x00<rest>") in
// client ID order. Client IDs hold no U+0000 [MQTT-1.5.4-2], so the keys
// of a client sort together, right after those of every client ID before
// it.
type ownedIter struct {
	it     *pebble.Iterator
	family string
	valid  bool
}

func newOwnedIter(r pebble.Reader, family string) (*ownedIter, error) {
	p := []byte(family)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: p, UpperBound: prefixEnd(p)})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: iterate %q: %w", p, err)
	}
	return &ownedIter{it: it, family: family, valid: it.First()}, nil
}

// each calls fn with every key of client id, the key's part after the
// client ID and its value. Keys of client IDs before id, which have no
// session, are skipped, as a per-session scan never reads them.
func (o *ownedIter) each(id []byte, fn func(k, rest, v []byte) error) error {
	for ; o.valid; o.valid = o.it.Next() {
		k := o.it.Key()
		body := k[len(o.family):]
		sep := bytes.IndexByte(body, 0)
		if sep < 0 {
			return corrupt(k, "malformed key")
		}
		c := bytes.Compare(body[:sep], id)
		if c > 0 {
			return nil
		}
		if c < 0 {
			continue
		}
		v, err := o.it.ValueAndErr()
		if err == nil {
			err = fn(k, body[sep+1:], v)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (o *ownedIter) close() error {
	if err := errors.Join(o.it.Error(), o.it.Close()); err != nil {
		return readErr([]byte(o.family), err)
	}
	return nil
}

// LoadRetained calls fn for every retained message, in topic order.
func (s *Store) LoadRetained(fn func(*store.Message) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	snap := s.db.NewSnapshot()
	defer snap.Close()
	return scan(snap, []byte(pRetained), func(k, v []byte) error {
		m, err := decodeMessageValue(k, v)
		if err != nil {
			return err
		}
		return fn(m)
	})
}

// ReadQueue calls fn with clientID's entries after afterSeq, in Seq order,
// reading readChunk entries at a time; memory stays bounded whatever the
// queue length.
func (s *Store) ReadQueue(clientID string, afterSeq uint64, limit int, fn func(store.QueueEntry, *store.Message) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	return store.ReadPaged(afterSeq, limit, readChunk, func(after uint64, n int) ([]store.QueueItem, error) {
		return s.readChunk(clientID, after, n)
	}, func(it *store.QueueItem) bool { return fn(it.Entry, it.Message) })
}

// ReadQueueEntries is ReadQueue without the messages: each entry's size
// is in its run, so no m/ key is read and no message decoded.
func (s *Store) ReadQueueEntries(clientID string, afterSeq uint64, limit int, fn func(store.QueueEntry, int64) bool) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	return store.ReadPaged(afterSeq, limit, readChunk, func(after uint64, n int) ([]store.QueueSize, error) {
		want, _, err := s.readQueueRuns(clientID, after, n, false)
		if err != nil {
			return nil, err
		}
		items := make([]store.QueueSize, len(want))
		for i, e := range want {
			items[i] = store.QueueSize{Entry: e.QueueEntry, Size: e.size}
		}
		return items, nil
	}, func(it *store.QueueSize) bool { return fn(it.Entry, it.Size) })
}

func (s *Store) readChunk(clientID string, afterSeq uint64, n int) ([]store.QueueItem, error) {
	want, snap, err := s.readQueueRuns(clientID, afterSeq, n, true)
	if err != nil {
		return nil, err
	}
	defer snap.Close()
	return readMessages(snap, &s.msgs, clientID, want)
}

// readQueueRuns returns clientID's first n entries after afterSeq (at
// most), read from the store's current state or, withSnapshot, from a
// snapshot it returns for the caller to read their messages from and
// close. The runs read go into the run cache: the next commits of these
// entries (sent, dequeued) need not read them.
func (s *Store) readQueueRuns(clientID string, afterSeq uint64, n int, withSnapshot bool) (_ []*qent, snap *pebble.Snapshot, err error) {
	s.mu.Lock()
	gen := s.cache.gen
	var r pebble.Reader = s.db
	if withSnapshot {
		snap = s.db.NewSnapshot()
		r = snap
	}
	it, err := r.NewIter(queueIterOptions(clientID))
	s.mu.Unlock()
	var runs []*run
	var want []*qent
	if err != nil {
		err = fmt.Errorf("pebblestore: read queue %q: %w", clientID, err)
	} else {
		runs, want, err = readRuns(it, clientID, afterSeq, n)
	}
	if err != nil {
		if snap != nil {
			_ = snap.Close()
		}
		return nil, nil, err
	}
	s.mu.Lock()
	s.putRead(clientID, gen, runs)
	s.mu.Unlock()
	return want, snap, nil
}

// queueIterOptions bound an iterator to clientID's q/ runs.
func queueIterOptions(clientID string) *pebble.IterOptions {
	prefix := clientPrefix(pQueue, clientID)
	return &pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)}
}

// readRuns reads, through it (which it closes), the runs of clientID that
// hold its first n entries after afterSeq, and returns them with those
// entries.
func readRuns(it *pebble.Iterator, clientID string, afterSeq uint64, n int) (runs []*run, want []*qent, err error) {
	// The run holding afterSeq+1 may start before it.
	ok := it.SeekLT(queueKey(clientID, afterSeq+1))
	if !ok {
		ok = it.First()
	}
	for ; ok && len(want) < n; ok = it.Next() {
		r, err := runAt(it, true)
		if err != nil {
			return nil, nil, errors.Join(err, it.Close())
		}
		runs = append(runs, r)
		for i := range r.ents {
			if e := &r.ents[i]; e.Seq > afterSeq && len(want) < n {
				want = append(want, e)
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, nil, readErr(clientPrefix(pQueue, clientID), err)
	}
	return runs, want, nil
}

// readMessages returns the entries with their messages: inline ones
// decoded, the others taken from cache or fetched with one iterator (a
// queue's message IDs mostly increase with its Seqs, so the seeks move
// forward through the same blocks) and cached.
func readMessages(snap *pebble.Snapshot, cache *msgCache, clientID string, entries []*qent) ([]store.QueueItem, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	items := make([]store.QueueItem, 0, len(entries))
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			_ = it.Close()
		}
	}()
	for _, e := range entries {
		if e.mraw != nil {
			m, err := e.message(queueKey(clientID, e.Seq))
			if err != nil {
				return nil, err
			}
			items = append(items, store.QueueItem{Entry: e.QueueEntry, Message: m})
			continue
		}
		if m := cache.get(e.MessageID); m != nil {
			items = append(items, store.QueueItem{Entry: e.QueueEntry, Message: m})
			continue
		}
		if it == nil {
			var err error
			if it, err = snap.NewIter(&pebble.IterOptions{LowerBound: []byte(pMessage), UpperBound: prefixEnd([]byte(pMessage))}); err != nil {
				return nil, fmt.Errorf("pebblestore: read messages: %w", err)
			}
		}
		mk := messageKey(e.MessageID)
		if !it.SeekGE(mk) || !bytes.Equal(it.Key(), mk) {
			if err := it.Error(); err != nil {
				return nil, readErr(mk, err)
			}
			return nil, corrupt(queueKey(clientID, e.Seq), "message %d missing", e.MessageID)
		}
		mv, err := it.ValueAndErr()
		if err != nil {
			return nil, readErr(mk, err)
		}
		m, err := decodeMessageValue(mk, mv)
		if err != nil {
			return nil, err
		}
		cache.put(e.MessageID, m)
		items = append(items, store.QueueItem{Entry: e.QueueEntry, Message: m})
	}
	return items, nil
}
