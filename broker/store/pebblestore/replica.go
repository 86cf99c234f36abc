package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/bollard-io/bollard/broker/store"
)

// keyApplied holds the index of the last replicated log entry applied to
// this store (see ApplyReplicated); absent in a store never replicated.
var keyApplied = []byte("meta/applied")

// ErrApply wraps a failure to write a replicated entry (not a refusal of
// the entry itself): the store is failed and the member must stop applying.
var ErrApply = errors.New("pebblestore: apply failed")

// ApplyReplicated applies b as entry index of a replicated log, in one
// Pebble batch that also records index as the last applied entry, without
// waiting for an fsync (the log is what is durable; Sync makes everything
// applied so far durable before a snapshot). Entries must come in
// increasing index order; an entry at or below AppliedIndex was applied
// before (a replay after a restart) and is skipped.
//
// An entry the store refuses (its error wraps store.ErrInvalid or
// store.ErrNotFound) changes nothing but the applied index, and the
// refusal is returned: every member refuses it alike, since every member
// applies the same entries to the same state. Any other error wraps
// ErrApply: the store is failed and refuses every later write.
func (s *Store) ApplyReplicated(index uint64, b *store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	if s.failed != nil {
		return fmt.Errorf("%w: store failed earlier: %w", ErrApply, s.failed)
	}
	if index <= s.applied {
		return nil
	}
	s.ops.Add(1)
	defer s.ops.Done()
	tx, verr := s.prepare([]*store.Batch{b})
	var pb *pebble.Batch
	switch {
	case verr == nil:
		pb = tx.b
	case errors.Is(verr, store.ErrInvalid) || errors.Is(verr, store.ErrNotFound):
		pb = s.db.NewBatch() // refused alike everywhere: record only the index
	default:
		return s.applyFailed(nil, nil, verr) // could not read the state to validate
	}
	if err := pb.Set(keyApplied, be64(index), nil); err != nil {
		return s.applyFailed(tx, pb, err)
	}
	if err := s.write(pb, false); err != nil {
		return s.applyFailed(tx, pb, err)
	}
	s.applied = index
	s.dirty.Store(true)
	if tx == nil {
		_ = pb.Close()
		return verr
	}
	tx.publish()
	tx.recycle()
	return pb.Close()
}

func (s *Store) applyFailed(tx *txn, pb *pebble.Batch, err error) error {
	if tx != nil {
		tx.recycle()
	}
	if pb != nil {
		_ = pb.Close()
	}
	s.failLocked(err)
	return fmt.Errorf("%w: %w", ErrApply, err)
}

// AppliedIndex is the index of the last replicated entry applied (0 for a
// store that never applied one).
func (s *Store) AppliedIndex() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applied
}

// Sync makes every write applied so far durable.
func (s *Store) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	b := s.db.NewBatch()
	if err := b.LogData(nil, nil); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.writeSync(b); err != nil {
		s.failLocked(err)
		return fmt.Errorf("pebblestore: sync: %w", err)
	}
	return nil
}

// Checkpoint writes a consistent copy of the store into dir, which must
// not exist, as of the last write applied before the call. The copy shares
// the immutable table files with the store (hard links) and is itself a
// store Open can read. Writes are held off while it is taken.
func (s *Store) Checkpoint(dir string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.ops.Done()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := safe(func() error { return s.db.Checkpoint(dir, pebble.WithFlushedWAL()) }); err != nil {
		return fmt.Errorf("pebblestore: checkpoint %s: %w", dir, err)
	}
	return nil
}

func (s *Store) loadApplied() error {
	v, closer, err := s.db.Get(keyApplied)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return nil
	case err != nil:
		return readErr(keyApplied, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return corrupt(keyApplied, "malformed applied index")
	}
	s.applied = binary.BigEndian.Uint64(v)
	return nil
}
