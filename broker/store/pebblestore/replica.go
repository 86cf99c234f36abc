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
// this store (see ApplyReplicated), then its term when known (8 bytes
// each, big-endian; stores written before terms were recorded hold the
// index alone); absent in a store never replicated.
var keyApplied = []byte("meta/applied")

// appliedValue encodes keyApplied's value.
func appliedValue(index, term uint64) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), index)
	if term == 0 {
		return v
	}
	return binary.BigEndian.AppendUint64(v, term)
}

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
	return s.ApplyReplicatedTerm(index, 0, b)
}

// applyGate says, with s.mu held, whether the replicated entry at index is
// to be applied: not by a closed or failed store (an error), not when it
// is at or below the applied index (a replay: nil).
func (s *Store) applyGate(index uint64) (apply bool, err error) {
	if s.closed {
		return false, store.ErrClosed
	}
	if s.failed != nil {
		return false, fmt.Errorf("%w: store failed earlier: %w", ErrApply, s.failed)
	}
	return index > s.applied, nil
}

// ApplyReplicatedTerm is ApplyReplicated recording term as the entry's
// Raft term (see AppliedTerm; 0 records none).
func (s *Store) ApplyReplicatedTerm(index, term uint64, b *store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if apply, err := s.applyGate(index); !apply {
		return err
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
	if err := pb.Set(keyApplied, appliedValue(index, term), nil); err != nil {
		return s.applyFailed(tx, pb, err)
	}
	if err := s.write(pb, false); err != nil {
		return s.applyFailed(tx, pb, err)
	}
	s.applied, s.appliedTerm = index, term
	s.dirty.Store(true)
	if tx == nil {
		_ = pb.Close()
		return verr
	}
	tx.publish()
	tx.recycle()
	return pb.Close()
}

// ApplyReplicatedBatch applies the entries at indexes (increasing, one
// batch each) as ApplyReplicated would one after the other, and returns
// each entry's outcome. When the store accepts every entry not applied
// before, they are written as one Pebble batch recording the last index:
// one validation pass, one memtable insertion and, since a session's
// entries appended by consecutive batches share a queue run, fewer keys
// than one write per entry. When the store refuses one of them, the
// entries are applied one by one instead, so that each refusal is that
// entry's alone, exactly as without batching. A write failure fails the
// store, as in ApplyReplicated: the failed entry's error and every later
// one's wrap ErrApply.
func (s *Store) ApplyReplicatedBatch(indexes []uint64, bs []*store.Batch) []error {
	return s.ApplyReplicatedBatchTerms(indexes, nil, bs)
}

// ApplyReplicatedBatchTerms is ApplyReplicatedBatch recording the entries'
// Raft terms (terms[i] is indexes[i]'s; nil records none).
func (s *Store) ApplyReplicatedBatchTerms(indexes, terms []uint64, bs []*store.Batch) []error {
	errs := make([]error, len(bs))
	if len(indexes) != len(bs) || (terms != nil && len(terms) != len(bs)) {
		for i := range errs {
			errs[i] = fmt.Errorf("%w: %d indexes and %d terms for %d batches", ErrApply, len(indexes), len(terms), len(bs))
		}
		return errs
	}
	term := func(i int) uint64 {
		if terms == nil {
			return 0
		}
		return terms[i]
	}
	if selfContained(bs) && s.applyMerged(indexes, term(len(bs)-1), bs, errs) {
		return errs
	}
	for i, b := range bs {
		errs[i] = s.ApplyReplicatedTerm(indexes[i], term(i), b)
	}
	return errs
}

// applyMerged applies the entries of indexes above the applied index as
// one Pebble batch. It returns false, having changed nothing, when the
// store refuses the merged batch (the caller applies the entries one by
// one); otherwise errs holds every entry's outcome.
func (s *Store) applyMerged(indexes []uint64, lastTerm uint64, bs []*store.Batch, errs []error) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.closed:
		fill(errs, store.ErrClosed)
		return true
	case s.failed != nil:
		fill(errs, fmt.Errorf("%w: store failed earlier: %w", ErrApply, s.failed))
		return true
	}
	first := 0
	for first < len(indexes) && indexes[first] <= s.applied {
		first++ // applied before: a replay after a restart
	}
	if first == len(indexes) {
		return true
	}
	for i := first + 1; i < len(indexes); i++ {
		if indexes[i] <= indexes[i-1] {
			fill(errs[first:], fmt.Errorf("%w: entry %d after entry %d", ErrApply, indexes[i], indexes[i-1]))
			return true
		}
	}
	s.ops.Add(1)
	defer s.ops.Done()
	tx, verr := s.prepare(bs[first:])
	switch {
	case verr == nil:
	case errors.Is(verr, store.ErrInvalid) || errors.Is(verr, store.ErrNotFound):
		return false // some entry is refused: find which, one by one
	default:
		fill(errs[first:], s.applyFailed(nil, nil, verr))
		return true
	}
	last := indexes[len(indexes)-1]
	if err := tx.b.Set(keyApplied, appliedValue(last, lastTerm), nil); err != nil {
		fill(errs[first:], s.applyFailed(tx, tx.b, err))
		return true
	}
	if err := s.write(tx.b, false); err != nil {
		fill(errs[first:], s.applyFailed(tx, tx.b, err))
		return true
	}
	s.applied, s.appliedTerm = last, lastTerm
	s.dirty.Store(true)
	tx.publish()
	tx.recycle()
	if err := tx.b.Close(); err != nil {
		fill(errs[first:], err)
	}
	return true
}

// selfContained reports whether every entry of each batch refers to a
// message the same batch put before it. A batch that refers to one put
// by an earlier batch is refused alone (an entry's message is put by its
// own batch, see txn.enqueue) but would be accepted in a merged one, so
// such batches are never merged.
func selfContained(bs []*store.Batch) bool {
	put := map[uint64]bool{}
	for _, b := range bs {
		clear(put)
		var last uint64 // the message put last: a fan-out's entries name it
		for i := range b.Ops {
			op := &b.Ops[i]
			switch op.Kind {
			case store.OpPutMessage:
				if op.Message != nil {
					put[op.Message.ID] = true
					last = op.Message.ID
				}
			case store.OpEnqueue:
				if op.Entry == nil || (last != 0 && op.Entry.MessageID == last) {
					continue
				}
				if !put[op.Entry.MessageID] {
					return false
				}
			}
		}
	}
	return true
}

func fill(errs []error, err error) {
	for i := range errs {
		errs[i] = err
	}
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

// AppliedTerm is the Raft term of the last replicated entry applied, 0
// when it was not recorded.
func (s *Store) AppliedTerm() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appliedTerm
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
	if s.opts.NoWAL {
		// Without a log, only table files hold what was applied: the
		// checkpoint (a snapshot, after which Raft may drop the log's
		// entries) must have every entry applied so far in them.
		if err := safe(s.db.Flush); err != nil {
			return fmt.Errorf("pebblestore: checkpoint %s: flush: %w", dir, err)
		}
	}
	if err := safe(func() error { return s.db.Checkpoint(dir, pebble.WithFlushedWAL()) }); err != nil {
		return fmt.Errorf("pebblestore: checkpoint %s: %w", dir, err)
	}
	return nil
}

func (s *Store) loadApplied() error {
	return s.readMeta(keyApplied, func(v []byte) error {
		if len(v) != 8 && len(v) != 16 {
			return corrupt(keyApplied, "malformed applied index")
		}
		s.applied = binary.BigEndian.Uint64(v)
		if len(v) == 16 {
			s.appliedTerm = binary.BigEndian.Uint64(v[8:])
		}
		return nil
	})
}

// readMeta calls fn with the value of the store's own key k (valid only
// during the call); an absent key is no error and no call.
func (s *Store) readMeta(k []byte, fn func(v []byte) error) error {
	v, closer, err := s.db.Get(k)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		return nil
	case err != nil:
		return readErr(k, err)
	}
	defer closer.Close()
	return fn(v)
}
