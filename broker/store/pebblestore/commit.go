package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"

	"github.com/bollard-io/bollard/broker/store"
)

// Commit validates b against the stored state and writes it as one Pebble
// batch. In Sync mode (unless b.NoSync) it then waits for the WAL fsync,
// which Pebble shares among every commit waiting at that moment: the commit
// lock is held only while the batch is validated and written to the
// memtable, never across the fsync, so concurrent committers group.
func (s *Store) Commit(ctx context.Context, b *store.Batch) error {
	wait, err := s.CommitNoWait(ctx, b)
	if err != nil {
		return err
	}
	return wait()
}

var _ store.Pipeliner = (*Store)(nil)

// CommitNoWait is the first half of Commit: it validates b and applies it
// to the memtable and the WAL under the commit lock, and returns a wait
// func that waits for the WAL fsync (in Sync mode, unless b.NoSync) with
// no lock held. Commits applied meanwhile join the same or the next fsync.
func (s *Store) CommitNoWait(ctx context.Context, bs ...*store.Batch) (func() error, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: commit: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, store.ErrClosed
	}
	if s.failed != nil {
		s.mu.Unlock()
		return nil, fmt.Errorf("pebblestore: commit refused after an earlier write failure: %w", s.failed)
	}
	s.ops.Add(1)
	pb, err := s.prepare(bs)
	if err != nil {
		s.mu.Unlock()
		s.ops.Done()
		return nil, err
	}
	sync := false
	for _, b := range bs {
		sync = sync || (s.opts.Durability == Sync && !b.NoSync)
	}
	err = s.write(pb.b, sync)
	if err != nil {
		pb.recycle()
		s.failLocked(err)
		s.mu.Unlock()
		s.ops.Done()
		return nil, fmt.Errorf("pebblestore: commit: %w", err)
	}
	pb.publish()
	pb.recycle()
	if !sync {
		s.dirty.Store(true)
	}
	s.mu.Unlock()
	// The wait keeps only the Pebble batch: the txn's maps of touched
	// sessions, queues and messages are garbage from here on, while the
	// commit waits for its fsync behind others.
	b := pb.b
	return func() error {
		defer s.ops.Done()
		if sync {
			if err := s.waitSync(b); err != nil {
				return fmt.Errorf("pebblestore: commit: fsync: %w", err)
			}
		}
		return b.Close()
	}, nil
}

// prepare builds one Pebble batch for bs; s.mu is held.
func (s *Store) prepare(bs []*store.Batch) (*txn, error) {
	tx := s.newTxn()
	n := 0
	for _, b := range bs {
		for i := range b.Ops {
			op := &b.Ops[i]
			if err := tx.apply(op); err != nil {
				tx.recycle()
				_ = tx.b.Close() // nothing was written
				return nil, fmt.Errorf("pebblestore: commit: op %d (%v): %w", n+i, op.Kind, err)
			}
		}
		n += len(b.Ops)
	}
	if err := tx.finish(); err != nil {
		tx.recycle()
		_ = tx.b.Close()
		return nil, fmt.Errorf("pebblestore: commit: %w", err)
	}
	return tx, nil
}

// write applies pb to the memtable (and the WAL buffer). Pebble reports
// some write failures by panicking or through Logger.Fatalf (which panics,
// see logger); both become errors here.
func (s *Store) write(pb *pebble.Batch, sync bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.poisoned = true
			err = fmt.Errorf("pebble write failed: %v", r)
		}
	}()
	if sync {
		return s.db.ApplyNoSyncWait(pb, pebble.Sync)
	}
	return s.db.Apply(pb, pebble.NoSync)
}

// waitSync waits for the fsync of a batch applied with ApplyNoSyncWait. A
// failed fsync fails the store: Pebble's WAL is unusable after it, and the
// next write would panic.
func (s *Store) waitSync(pb *pebble.Batch) error {
	if err := pb.SyncWait(); err != nil {
		s.mu.Lock()
		s.failLocked(err)
		s.mu.Unlock()
		return err
	}
	return nil
}

func (s *Store) failLocked(err error) {
	if s.failed == nil {
		s.failed = err
		s.log.Error("store write failed; refusing further commits", "err", err)
	}
}

// writeSync applies pb with an fsync outside the commit path (format
// version, Close); it turns Pebble's panics into errors like Commit.
func (s *Store) writeSync(pb *pebble.Batch) error {
	if s.opts.NoWAL {
		// No log to sync: the memtables go to table files instead.
		if err := s.write(pb, false); err != nil {
			return err
		}
		return safe(s.db.Flush)
	}
	if err := s.write(pb, true); err != nil {
		return err
	}
	if err := pb.SyncWait(); err != nil {
		return err
	}
	return pb.Close()
}

// safe runs f, turning a panic into an error.
func safe(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("pebble panicked: %v", r)
		}
	}()
	return f()
}

// txn is one batch being validated and translated into Pebble writes. It
// reads the database as the commits before it left it and keeps its own
// view of what it changed (sessions, queues, message counts, retained
// topics), so later operations see earlier ones without an indexed Pebble
// batch; in-memory state changes only in publish, after the write
// succeeded.
type txn struct {
	s      *Store
	b      *pebble.Batch
	sess   map[string]*sessInfo // copies of touched sessions; nil: deleted
	refs   map[uint64]*refState
	queues map[string]*txnQueue // queues the batch touched
	added  []addedEnt           // entries the batch appended, see txnQueue
	stats  store.Stats
	maxID  uint64 // highest message ID written by the batch
	// lastPut is the message putMessage put last, lastPutID its ID: the
	// entries of a fan-out that follow it all name it, and find it here
	// without a map lookup each.
	lastPutID uint64
	lastPut   *refState
	views     fanout // the sessions of the fan-out before, see fanout
	// modified are the sessions whose existing entries changed, dropped
	// those the batch deleted.
	*scratch
	modified map[string]bool
	dropped  map[string]bool
	retained map[string]bool // retained topics the batch put (true) or deleted
}

// scratch holds buffers for keys and values that Pebble's Set copies,
// reused by every batch (batches are prepared under s.mu, one at a time).
type scratch struct {
	kbuf, vbuf []byte // keys and values
	ebuf, mbuf []byte // run bodies and inline messages
	added      []addedEnt
	// The batch's records, reused by the next batch (see recycle).
	sessSlab  slab[sessInfo]
	queueSlab slab[txnQueue]
	refSlab   slab[refState]
	fanBuf    []fanned // fanout's, reused
	fanRecBuf []fanned
	sessMap   map[string]*sessInfo
	queueMap  map[string]*txnQueue
	refMap    map[uint64]*refState
	modified  map[string]bool
	dropped   map[string]bool
}

// refState is a message touched by the batch.
type refState struct {
	refs    int64          // current count
	size    int64          // size of the stored (or put) message
	stored  bool           // stored before the batch
	oldRefs int64          // count before the batch
	oldSize int64          // size before the batch
	put     *store.Message // put by this batch, to be written if referenced
}

// recycle hands the txn's records back for the next batch, without the
// references they hold. The txn must not be used afterwards.
func (t *txn) recycle() {
	clear(t.added)
	sc := t.scratch
	sc.added = t.added[:0]
	clear(sc.sessMap)
	clear(sc.queueMap)
	clear(sc.refMap)
	clear(sc.modified)
	clear(sc.dropped)
	sc.sessSlab.reset()
	sc.queueSlab.reset()
	sc.refSlab.reset()
	t.views.forget()
	sc.fanBuf, sc.fanRecBuf = t.views.fan, t.views.fanRec
}

// inline returns the message when the batch put it and it has a single
// reference: it is then stored inside that entry, with no m/ or c/ key.
func (r *refState) inline() *store.Message {
	if r.put != nil && r.refs == 1 {
		return r.put
	}
	return nil
}

func (s *Store) newTxn() *txn {
	sc := &s.scratch
	if sc.sessMap == nil {
		sc.sessMap, sc.queueMap, sc.refMap = make(map[string]*sessInfo), make(map[string]*txnQueue), make(map[uint64]*refState)
		sc.modified, sc.dropped = make(map[string]bool), make(map[string]bool)
	}
	return &txn{s: s, b: s.db.NewBatch(), sess: sc.sessMap, refs: sc.refMap, queues: sc.queueMap, stats: s.stats,
		modified: sc.modified, dropped: sc.dropped, scratch: sc, added: sc.added[:0],
		views: fanout{fan: sc.fanBuf[:0], fanRec: sc.fanRecBuf[:0]}}
}

// session returns the batch's view of a session, nil if it does not exist.
func (t *txn) session(clientID string) *sessInfo {
	if si, ok := t.sess[clientID]; ok {
		return si
	}
	base := t.s.sessions[clientID]
	if base == nil {
		return nil
	}
	c := t.sessSlab.get()
	*c = *base
	t.sess[clientID] = c
	return c
}

func (t *txn) mustSession(clientID string) (*sessInfo, error) {
	if si := t.session(clientID); si != nil {
		return si, nil
	}
	return nil, fmt.Errorf("session %q: %w", clientID, store.ErrNotFound)
}

func (t *txn) apply(op *store.Op) error {
	switch op.Kind {
	case store.OpPutSession:
		return t.putSession(op.Session)
	case store.OpDeleteSession:
		return t.deleteSession(op.ClientID)
	case store.OpPutSubscription:
		return t.putSubscription(op.ClientID, op.Subscription)
	case store.OpDeleteSubscription:
		if t.session(op.ClientID) == nil {
			return nil
		}
		return t.b.Delete(subKey(op.ClientID, op.Filter), nil)
	case store.OpPutMessage:
		return t.putMessage(op.Message)
	case store.OpEnqueue:
		return t.enqueue(op.ClientID, op.Entry)
	case store.OpUpdateEntry:
		return t.updateEntry(op.ClientID, op.Entry)
	case store.OpDequeue:
		return t.dequeue(op.ClientID, op.Seq)
	case store.OpPutInboundQoS2:
		if _, err := t.mustSession(op.ClientID); err != nil {
			return err
		}
		return t.b.Set(inboundKey(op.ClientID, op.PacketID), inboundValue, nil)
	case store.OpDeleteInboundQoS2:
		if t.session(op.ClientID) == nil {
			return nil
		}
		return t.b.Delete(inboundKey(op.ClientID, op.PacketID), nil)
	case store.OpPutRetained:
		return t.putRetained(op.Message)
	case store.OpDeleteRetained:
		return t.deleteRetained(op.Topic)
	}
	return fmt.Errorf("unknown op kind %d: %w", op.Kind, store.ErrInvalid)
}

func (t *txn) putSession(rec *store.Session) error {
	if rec == nil {
		return fmt.Errorf("nil session: %w", store.ErrInvalid)
	}
	if strings.IndexByte(rec.ClientID, 0) >= 0 {
		return fmt.Errorf("client ID %q contains NUL: %w", rec.ClientID, store.ErrInvalid)
	}
	t.views.forget()
	if t.session(rec.ClientID) == nil {
		t.sess[rec.ClientID] = t.sessSlab.get()
		t.modified[rec.ClientID] = true
		t.stats.Sessions++
	}
	return t.b.Set(sessionKey(rec.ClientID), encodeSession(rec), nil)
}

// deleteSession deletes the session's keys with range deletions and
// releases the messages of its queue entries.
func (t *txn) deleteSession(clientID string) error {
	si := t.session(clientID)
	if si == nil {
		return nil
	}
	if si.msgs > 0 {
		if err := t.releaseQueue(clientID); err != nil {
			return err
		}
	}
	t.views.forget()
	delete(t.queues, clientID)
	t.sess[clientID] = nil
	t.dropped[clientID] = true
	t.stats.Sessions--
	errs := []error{t.b.Delete(sessionKey(clientID), nil), t.b.Delete(floorKey(clientID), nil)}
	for _, family := range []string{pSub, pQueue, pInbound} {
		p := clientPrefix(family, clientID)
		errs = append(errs, t.b.DeleteRange(p, prefixEnd(p), nil))
	}
	return errors.Join(errs...)
}

func (t *txn) putSubscription(clientID string, sub *store.Subscription) error {
	if sub == nil {
		return fmt.Errorf("nil subscription: %w", store.ErrInvalid)
	}
	if _, err := t.mustSession(clientID); err != nil {
		return err
	}
	return t.b.Set(subKey(clientID, sub.Filter), encodeSubscription(sub), nil)
}

func (t *txn) putRetained(m *store.Message) error {
	if m == nil {
		return fmt.Errorf("nil retained message: %w", store.ErrInvalid)
	}
	k := retainedKey(m.Topic)
	had, err := t.retainedExists(m.Topic, k)
	if err != nil {
		return err
	}
	if !had {
		t.stats.Retained++
	}
	t.retained[m.Topic] = true
	t.maxID = max(t.maxID, m.ID)
	return t.b.Set(k, encodeMessageValue(m), nil)
}

func (t *txn) deleteRetained(topic string) error {
	k := retainedKey(topic)
	had, err := t.retainedExists(topic, k)
	if err != nil || !had {
		return err
	}
	t.stats.Retained--
	t.retained[topic] = false
	return t.b.Delete(k, nil)
}

// retainedExists reports whether a retained message for topic exists for
// the batch: as the batch's earlier operations left it, or stored.
func (t *txn) retainedExists(topic string, k []byte) (bool, error) {
	if t.retained == nil {
		t.retained = make(map[string]bool)
	}
	if had, ok := t.retained[topic]; ok {
		return had, nil
	}
	return t.exists(k)
}

// get reads key from the database, as the commits before this batch left
// it (the batch is not indexed: operations that read what earlier ones of
// the same batch wrote track it themselves); nil, nil when it does not
// exist. The value is copied.
func (t *txn) get(key []byte) ([]byte, error) {
	v, closer, err := t.s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, readErr(key, err)
	}
	defer closer.Close()
	return append([]byte{}, v...), nil
}

func (t *txn) exists(key []byte) (bool, error) {
	v, err := t.get(key)
	return v != nil, err
}

// finish writes what the operations left to the end: queue runs, message
// bodies and reference counts (once per message), LastSeq floors, the
// message ID mark.
func (t *txn) finish() error {
	if err := t.finishQueues(); err != nil {
		return err
	}
	for id, r := range t.refs {
		if err := t.finishMessage(id, r); err != nil {
			return err
		}
	}
	if t.maxID >= t.s.idMark {
		if err := t.b.Set(keyMsgID, be64(t.maxID+idReserve), nil); err != nil {
			return err
		}
	}
	return nil
}

// finishMessage writes message id's m/ and c/ keys. A message the batch
// put with a single reference is stored inline in that entry's run (see
// finishQueues) and has neither.
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
	if !is || r.inline() != nil {
		if was {
			return errJoin(t.b.Delete(messageKey(id), nil), t.b.Delete(refCountKey(id), nil))
		}
		return nil
	}
	if r.put != nil {
		t.kbuf = binary.BigEndian.AppendUint64(append(t.kbuf[:0], pMessage...), id)
		t.vbuf = appendMessageValue(t.vbuf[:0], r.put)
		if err := t.b.Set(t.kbuf, t.vbuf, nil); err != nil {
			return err
		}
	}
	if r.refs == r.oldRefs && r.size == r.oldSize && r.put == nil {
		return nil
	}
	t.kbuf = binary.BigEndian.AppendUint64(append(t.kbuf[:0], pRefCount...), id)
	t.vbuf = appendRefCount(t.vbuf[:0], r.refs, r.size)
	return t.b.Set(t.kbuf, t.vbuf, nil)
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
	for id, q := range t.queues {
		if t.sess[id] == nil {
			continue
		}
		for _, r := range q.runs {
			if len(r.ents) == 0 {
				c.dropRun(id, r.first)
			} else {
				c.putRun(id, r.run)
			}
		}
	}
	for id := range t.modified {
		if si := t.sess[id]; si != nil {
			si.modGen = c.gen
		}
	}
	for id, r := range t.refs {
		if r.refs > 0 && r.inline() == nil {
			c.putRef(id, refCount{r.refs, r.size})
		} else {
			delete(c.refs, id)
		}
	}
	for id, si := range t.sess {
		switch base := t.s.sessions[id]; {
		case si == nil:
			delete(t.s.sessions, id)
		case base != nil:
			*base = *si // si is the batch's copy, reused by the next batch
		default:
			n := *si
			t.s.sessions[id] = &n
		}
	}
	t.s.stats = t.stats
	st := t.stats
	t.s.statsSnap.Store(&st)
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

// InlineCommits reports that CommitNoWait does no I/O but the write into
// the memtable and the WAL buffer (barring a write stall while memtables
// are flushed), so the broker's committer may call it on a submitting
// goroutine when no other commit is in flight (engine, inlinecommit.go).
func (s *Store) InlineCommits() bool { return true }
