package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/bollard-io/bollard/broker/store"
)

func be64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// recover checks the format version and rebuilds the in-memory state:
// per-session queue stats, store stats and the message ID counter. It reads
// every key except subscriptions, inbound state and message bodies.
func (s *Store) recover() error {
	steps := []func() error{s.checkVersion, s.loadSessionKeys, s.loadFloors, s.loadQueues, s.loadMessages, s.loadRetainedCount, s.loadApplied, s.loadClusterFormat}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	st := s.stats
	s.statsSnap.Store(&st)
	return nil
}

// scan calls fn for every key with prefix, in key order.
func scan(r pebble.Reader, prefix []byte, fn func(k, v []byte) error) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("pebblestore: iterate %q: %w", prefix, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), v)
		}
		if err != nil {
			return errors.Join(err, it.Close())
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return readErr(prefix, err)
	}
	return nil
}

// readErr wraps a Pebble read error, marking corruption as store.ErrCorrupt.
func readErr(what []byte, err error) error {
	if pebble.IsCorruptionError(err) {
		return fmt.Errorf("pebblestore: read %q: %w: %w", what, store.ErrCorrupt, err)
	}
	return fmt.Errorf("pebblestore: read %q: %w", what, err)
}

func (s *Store) checkVersion() error {
	v, closer, err := s.db.Get(keyVersion)
	if errors.Is(err, pebble.ErrNotFound) {
		return s.initVersion()
	}
	if err != nil {
		return readErr(keyVersion, err)
	}
	defer closer.Close()
	if len(v) != 4 {
		return corrupt(keyVersion, "malformed format version")
	}
	if got := binary.BigEndian.Uint32(v); got != formatVersion {
		return fmt.Errorf("%w: %s has format %d, this build reads format %d", ErrFormatVersion, s.dir, got, formatVersion)
	}
	return nil
}

// initVersion writes the format version into a new store. A store that
// has data but no version key was damaged or is not ours.
func (s *Store) initVersion() error {
	it, err := s.db.NewIter(nil)
	if err != nil {
		return fmt.Errorf("pebblestore: open %s: %w", s.dir, err)
	}
	empty := !it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return readErr(nil, err)
	}
	if !empty {
		return corrupt(keyVersion, "missing in a non-empty store %s", s.dir)
	}
	b := s.db.NewBatch()
	if err := b.Set(keyVersion, binary.BigEndian.AppendUint32(nil, formatVersion), nil); err != nil {
		return err
	}
	if err := s.writeSync(b); err != nil {
		return fmt.Errorf("pebblestore: initialise %s: %w", s.dir, err)
	}
	// A new database's first WAL was created before Pebble ratcheted its
	// format up to FormatWALSyncChunks, so it lacks the synced-offset
	// chunks that let replay tell a torn tail from damage. Flushing
	// rotates to a WAL that has them.
	if err := safe(s.db.Flush); err != nil {
		return fmt.Errorf("pebblestore: initialise %s: %w", s.dir, err)
	}
	return nil
}

func (s *Store) loadSessionKeys() error {
	return scan(s.db, []byte(pSession), func(k, v []byte) error {
		if _, err := decodeSession(k, v); err != nil {
			return err
		}
		s.sessions[string(k[len(pSession):])] = &sessInfo{}
		s.stats.Sessions++
		return nil
	})
}

// owner returns the session of a per-client key, which must exist.
func (s *Store) owner(k []byte, clientID string) (*sessInfo, error) {
	if si := s.sessions[clientID]; si != nil {
		return si, nil
	}
	return nil, corrupt(k, "no session %q", clientID)
}

func (s *Store) loadFloors() error {
	return scan(s.db, []byte(pFloor), func(k, v []byte) error {
		si, err := s.owner(k, string(k[len(pFloor):]))
		if err != nil {
			return err
		}
		if si.floor, err = decodeUvarint(k, v); err != nil {
			return err
		}
		si.lastSeq = max(si.lastSeq, si.floor)
		return nil
	})
}

// loadQueues reads every queue run: per-session counts and LastSeq, the
// inline messages, and the number of references to m/ messages.
func (s *Store) loadQueues() error {
	var shared int64
	var prevID string
	var prevLast uint64
	err := scan(s.db, []byte(pQueue), func(k, v []byte) error {
		id, first, err := queueKeyParts(k)
		if err != nil {
			return err
		}
		_, st, err := decodeRun(k, first, v, false)
		if err != nil {
			return err
		}
		si, err := s.owner(k, id)
		if err != nil {
			return err
		}
		if id == prevID && first <= prevLast {
			return corrupt(k, "queue run overlaps the run before it (ending at seq %d)", prevLast)
		}
		prevID, prevLast = id, st.last
		si.msgs += st.n
		si.bytes += st.bytes
		si.lastSeq = max(si.lastSeq, st.last)
		shared += st.shared
		s.maxStored = max(s.maxStored, st.maxID)
		s.stats.Messages += st.n - st.shared
		s.stats.Bytes += st.inlineBytes
		return nil
	})
	if err != nil {
		return err
	}
	s.sharedRefs = shared
	return nil
}

// loadMessages reads the reference counts and message keys: there must be
// one count per message, and the counts must add up to the queue entries.
func (s *Store) loadMessages() error {
	var refs int64
	var maxID uint64
	var counts, bytes int64
	err := scan(s.db, []byte(pRefCount), func(k, v []byte) error {
		r, size, err := decodeRefCount(k, v)
		if err != nil {
			return err
		}
		refs += r
		counts++
		bytes += size
		return nil
	})
	if err != nil {
		return err
	}
	if entries := s.sharedRefs; refs != entries {
		return fmt.Errorf("pebblestore: %s: reference counts add up to %d but %d queue entries refer to stored messages: %w", s.dir, refs, entries, store.ErrCorrupt)
	}
	var msgs int64
	err = scan(s.db, []byte(pMessage), func(k, _ []byte) error {
		id, err := messageKeyID(k)
		if err != nil {
			return err
		}
		msgs++
		maxID = max(maxID, id)
		return nil
	})
	if err != nil {
		return err
	}
	if msgs != counts {
		return fmt.Errorf("pebblestore: %s: %d messages but %d reference counts: %w", s.dir, msgs, counts, store.ErrCorrupt)
	}
	s.stats.Messages += counts
	s.stats.Bytes += bytes
	return s.loadIDMark(maxID)
}

func (s *Store) loadIDMark(maxID uint64) error {
	err := s.readMeta(keyMsgID, func(v []byte) error {
		if len(v) != 8 {
			return corrupt(keyMsgID, "malformed message ID mark")
		}
		s.idMark = binary.BigEndian.Uint64(v)
		return nil
	})
	if err != nil {
		return err
	}
	s.maxStored = max(s.maxStored, maxID)
	s.nextID.Store(max(s.idMark, s.maxStored))
	return nil
}

func (s *Store) loadRetainedCount() error {
	return scan(s.db, []byte(pRetained), func(k, v []byte) error {
		if _, err := decodeMessageValue(k, v); err != nil {
			return err
		}
		s.stats.Retained++
		return nil
	})
}
