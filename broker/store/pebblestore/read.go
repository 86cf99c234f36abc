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
// consistent snapshot.
func (s *Store) LoadSessions(fn func(*store.SessionState) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	s.mu.Lock()
	snap := s.db.NewSnapshot()
	queues := make(map[string]store.QueueStats, len(s.sessions))
	for id, si := range s.sessions {
		queues[id] = store.QueueStats{Messages: si.msgs, Bytes: si.bytes, LastSeq: si.lastSeq}
	}
	s.mu.Unlock()
	defer snap.Close()
	return scan(snap, []byte(pSession), func(k, v []byte) error {
		sess, err := decodeSession(k, v)
		if err != nil {
			return err
		}
		st := &store.SessionState{Session: sess, Queue: queues[sess.ClientID]}
		if err := loadOwned(snap, st); err != nil {
			return err
		}
		return fn(st)
	})
}

// loadOwned reads the subscriptions and inbound QoS 2 IDs of st's session.
func loadOwned(r pebble.Reader, st *store.SessionState) error {
	id := st.Session.ClientID
	err := scan(r, clientPrefix(pSub, id), func(k, v []byte) error {
		sub, err := decodeSubscription(k, string(k[len(pSub)+len(id)+1:]), v)
		st.Subscriptions = append(st.Subscriptions, sub)
		return err
	})
	if err != nil {
		return err
	}
	return scan(r, clientPrefix(pInbound, id), func(k, _ []byte) error {
		_, rest, err := splitClientKey(k, pInbound, 2)
		if err != nil {
			return err
		}
		st.InboundQoS2 = append(st.InboundQoS2, binary.BigEndian.Uint16(rest))
		return nil
	})
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
	}, fn)
}

func (s *Store) readChunk(clientID string, afterSeq uint64, n int) ([]store.QueueItem, error) {
	if afterSeq == ^uint64(0) {
		return nil, nil
	}
	s.mu.Lock()
	gen := s.cache.gen
	snap := s.db.NewSnapshot()
	s.mu.Unlock()
	defer snap.Close()
	prefix := clientPrefix(pQueue, clientID)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: read queue %q: %w", clientID, err)
	}
	// The run holding afterSeq+1 may start before it.
	ok := it.SeekLT(queueKey(clientID, afterSeq+1))
	if !ok {
		ok = it.First()
	}
	var runs []*run
	var want []*qent
	for ; ok && len(want) < n; ok = it.Next() {
		r, err := runAt(it, true)
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		runs = append(runs, r)
		for i := range r.ents {
			if e := &r.ents[i]; e.Seq > afterSeq && len(want) < n {
				want = append(want, e)
			}
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, readErr(prefix, err)
	}
	items, err := readMessages(snap, clientID, want)
	if err != nil {
		return nil, err
	}
	// The next commits of these entries (sent, dequeued) need not read them.
	s.mu.Lock()
	s.putRead(clientID, gen, runs)
	s.mu.Unlock()
	return items, nil
}

// readMessages returns the entries with their messages: inline ones
// decoded, the others fetched with one iterator (a queue's message IDs
// mostly increase with its Seqs, so the seeks move forward through the
// same blocks).
func readMessages(snap *pebble.Snapshot, clientID string, entries []*qent) ([]store.QueueItem, error) {
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
		items = append(items, store.QueueItem{Entry: e.QueueEntry, Message: m})
	}
	return items, nil
}
