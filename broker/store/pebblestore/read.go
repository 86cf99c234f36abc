package pebblestore

import (
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
	snap := s.db.NewSnapshot()
	defer snap.Close()
	if afterSeq == ^uint64(0) {
		return nil, nil
	}
	prefix := clientPrefix(pQueue, clientID)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: queueKey(clientID, afterSeq+1), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: read queue %q: %w", clientID, err)
	}
	var items []store.QueueItem
	for ok := it.First(); ok && len(items) < n; ok = it.Next() {
		item, err := readItemAt(snap, it)
		if err != nil {
			return nil, errors.Join(err, it.Close())
		}
		items = append(items, item)
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return nil, readErr(prefix, err)
	}
	return items, nil
}

// readItemAt decodes the entry under it and fetches its message.
func readItemAt(snap *pebble.Snapshot, it *pebble.Iterator) (store.QueueItem, error) {
	k := it.Key()
	_, seq, err := queueKeyParts(k)
	if err != nil {
		return store.QueueItem{}, err
	}
	v, err := it.ValueAndErr()
	if err != nil {
		return store.QueueItem{}, readErr(k, err)
	}
	e, err := decodeEntry(k, seq, v)
	if err != nil {
		return store.QueueItem{}, err
	}
	mk := messageKey(e.MessageID)
	mv, closer, err := snap.Get(mk)
	if errors.Is(err, pebble.ErrNotFound) {
		return store.QueueItem{}, corrupt(k, "message %d missing", e.MessageID)
	}
	if err != nil {
		return store.QueueItem{}, readErr(mk, err)
	}
	defer closer.Close()
	m, err := decodeMessageValue(mk, mv)
	if err != nil {
		return store.QueueItem{}, err
	}
	return store.QueueItem{Entry: e.QueueEntry, Message: m}, nil
}
