package cluster

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

var bg = context.Background()

// ErrNotLeader is returned by Commit on a member that is not the leader,
// or that lost leadership before the batch was committed: the batch may or
// may not be committed later, and nothing may be acknowledged for it.
var ErrNotLeader = errors.New("cluster: not the leader")

// replStore is the store.Store of a cluster member: reads come from the
// member's own Pebble store, which the FSM keeps up to date; Commit puts
// the batch in the replicated log and returns once a majority has it on
// disk and this member applied it.
type replStore struct {
	dir  string // cluster directory; the Pebble store is in dir/store
	opts pebblestore.Options

	// mu guards st: readers hold it shared; a snapshot restore replaces
	// the store under it exclusively.
	mu sync.RWMutex
	st *pebblestore.Store

	raft *raft.Raft // set once by Open, before any Commit
	// logFsyncs times the syncs of the member's Raft log (FsyncLatency);
	// nil for the recovery tool's store.
	logFsyncs    *store.Latencies
	applyTimeout time.Duration
	// done is closed when the member stops: with Raft's buffered apply
	// queue, an entry queued as Raft shuts down is never answered, so
	// waits end on done instead.
	done <-chan struct{}
	// pending carries every entry put in the log, in log order, to the
	// one goroutine (waitOutcomes) that waits for Raft's answers and
	// passes each on; at most maxPendingCommits wait in it.
	pending chan pendingCommit
	// applyMu makes putting an entry in the log and in pending one step,
	// so pending is in log order: waitOutcomes never waits for a later
	// entry while an earlier one's committer could go on.
	applyMu sync.Mutex
	// own holds this member's entries in flight, by the first byte of
	// their encoding: the FSM applies the leader's own entries from the
	// batch instead of decoding what it just encoded (Raft hands the
	// leader's FSM the very slice given to Apply), and answers their
	// committers itself (answerOwn). An entry leaves it when its outcome
	// is passed on, by the FSM or by waitOutcomes, whichever is first;
	// the FSM of a member that did not put the entry in the log (or
	// reads it back from the log) never finds it and decodes.
	ownMu sync.Mutex
	own   map[*byte]ownEntry
	// held are NoSync entries held back to go with the next one (see
	// hold); guarded by applyMu, as are heldSince (when the first of them
	// was held, as time.Since(epoch)) and holdTimer.
	held      []heldEntry
	heldSince time.Duration
	holdTimer *time.Timer
	// inflight counts this member's entries in the log whose outcome was
	// not passed on yet; lastOutcome is when the latest was (as
	// time.Since(epoch)). They tell the hold whether an entry a client
	// waits for is still on its way (see holdLeft).
	inflight    atomic.Int64
	lastOutcome atomic.Int64
	// formatState is the entry format the cluster agreed on, as this
	// member applied it: the leader encodes entries in it (format.go).
	formatState
}

// epoch is the origin of the monotonic instants the store keeps as
// durations.
var epoch = time.Now()

// pendingCommit is an entry in the log and where its outcome goes.
type pendingCommit struct {
	f   raft.ApplyFuture
	key *byte      // the entry's key in own (it also keeps the encoding alive, so no other entry takes its key meanwhile)
	res chan error // buffered: neither the FSM nor waitOutcomes waits for a committer
}

// ownEntry is an entry of this member in flight: its batch and where its
// outcome goes (answered once, see own). merged: b is CommitNoWait's
// merge of a group (from mergedBatches), recycled once the FSM applied it.
type ownEntry struct {
	b      *store.Batch
	res    chan error
	merged bool
}

// mergedBatches recycles the batches CommitNoWait merges a group into: a
// group of publishes fanned out to many sessions is thousands of
// operations (about 100 bytes each), and allocating a new array for every
// group made most of the leader's garbage.
var mergedBatches = sync.Pool{New: func() any { return new(store.Batch) }}

// maxMergedOps bounds the operations of a merged batch kept for reuse.
const maxMergedOps = 1 << 15

// recycleMerged returns a merged batch, which nothing references any
// more, to mergedBatches. Its operations are not cleared: the next merge
// overwrites them and clears only what it leaves over (clearing a group's
// whole array here was 4% of a leader's CPU under load). Until then they
// keep the group's records reachable, as they were while it was in
// flight; an idle pool is emptied by the collector. A variable, so that
// a test sees what is recycled.
var recycleMerged = func(b *store.Batch) {
	if cap(b.Ops) > maxMergedOps {
		return
	}
	mergedBatches.Put(b)
}

// mergeInto sets b's operations to those of bs, in order, in b's array
// when it has room; a new array has room for a quarter more, as groups
// vary in size. A recycled b still holds the last merge's operations
// (recycleMerged): what the new ones do not overwrite is cleared.
func mergeInto(b *store.Batch, bs []*store.Batch) {
	n := 0
	for _, x := range bs {
		n += len(x.Ops)
	}
	stale := len(b.Ops)
	if cap(b.Ops) < n {
		room := n + n/4
		if room > maxMergedOps {
			room = max(n, maxMergedOps) // past it, the array is not kept anyway
		}
		b.Ops, stale = make([]store.Op, 0, room), 0
	}
	b.Ops = b.Ops[:0]
	for _, x := range bs {
		b.Ops = append(b.Ops, x.Ops...)
	}
	if stale > n {
		clear(b.Ops[n:stale])
	}
}

// ownBatch returns the batch data encodes when this member put data in
// the log and its outcome is not known yet, else nil.
func (s *replStore) ownBatch(data []byte) *store.Batch {
	if len(data) == 0 {
		return nil
	}
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	return s.own[&data[0]].b
}

func (s *replStore) setOwn(key *byte, e ownEntry) {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	if s.own == nil {
		s.own = make(map[*byte]ownEntry)
	}
	s.own[key] = e
}

// takeOwn removes the entry at key from own and returns it; its res is
// nil when it was passed on already.
func (s *replStore) takeOwn(key *byte) ownEntry {
	s.ownMu.Lock()
	defer s.ownMu.Unlock()
	e, ok := s.own[key]
	if !ok {
		return ownEntry{}
	}
	delete(s.own, key)
	s.inflight.Add(-1)
	s.lastOutcome.Store(int64(time.Since(epoch)))
	return e
}

// answerOwn passes the outcome of an entry this member put in the log
// straight from the FSM that applied it (committed by a majority, applied
// here) to its committer: Raft would pass the same outcome to the entry's
// future once the whole batch is applied, and waitOutcomes on from there,
// one goroutine hand-off later on the path of every acknowledgement. It
// does nothing for an entry that is not this member's.
func (s *replStore) answerOwn(data []byte, outcome any) {
	if len(data) == 0 {
		return
	}
	e := s.takeOwn(&data[0])
	if e.res == nil {
		return
	}
	err, _ := outcome.(error)
	e.res <- err
	if e.merged {
		// The FSM is done with it (it applied the entry and no longer
		// reads the batch); waitOutcomes, which may take an entry while
		// the FSM still applies it, never recycles one.
		recycleMerged(e.b)
	}
}

// maxPendingCommits bounds the entries queued for waitOutcomes: a
// committer that finds it full waits (Raft answers in log order, so the
// queue drains as fast as entries commit).
const maxPendingCommits = 1024

var (
	_ store.Store        = (*replStore)(nil)
	_ store.DiskReporter = (*replStore)(nil)
)

func (s *replStore) storeDir() string { return filepath.Join(s.dir, "store") }

// openLocal opens the member's Pebble store, finishing or undoing a
// restore a crash interrupted.
func (s *replStore) openLocal() error {
	live, incoming, old := s.storeDir(), s.storeDir()+".incoming", s.storeDir()+".old"
	switch {
	case exists(filepath.Join(incoming, restoreDone)) && !exists(live):
		if err := os.Rename(incoming, live); err != nil {
			return err
		}
	case exists(incoming):
		if err := os.RemoveAll(incoming); err != nil {
			return err
		}
	}
	if exists(old) && exists(live) {
		if err := os.RemoveAll(old); err != nil {
			return err
		}
	}
	_ = os.Remove(filepath.Join(live, restoreDone))
	st, err := pebblestore.Open(live, s.opts)
	if err != nil {
		return err
	}
	s.st = st
	s.setFormat(st.ClusterFormat())
	return nil
}

// restoreDone marks a fully written incoming store.
const restoreDone = "RESTORE-COMPLETE"

// restore replaces the store with the one fill writes into a new
// directory. A crash at any point leaves either the old or the new store.
func (s *replStore) restore(fill func(dir string) error) error {
	incoming, old := s.storeDir()+".incoming", s.storeDir()+".old"
	if err := os.RemoveAll(incoming); err != nil {
		return err
	}
	if err := fill(incoming); err != nil {
		_ = os.RemoveAll(incoming)
		return err
	}
	if err := writeFile(filepath.Join(incoming, restoreDone), strings.NewReader("")); err != nil {
		return err
	}
	if err := syncDir(incoming); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
		return fmt.Errorf("cluster: restore: close the store: %w", err)
	}
	_ = os.RemoveAll(old)
	if err := os.Rename(s.storeDir(), old); err != nil {
		return err
	}
	if err := os.Rename(incoming, s.storeDir()); err != nil {
		return err
	}
	if err := syncDir(s.dir); err != nil {
		return err
	}
	_ = os.RemoveAll(old)
	_ = os.Remove(filepath.Join(s.storeDir(), restoreDone))
	st, err := pebblestore.Open(s.storeDir(), s.opts)
	if err != nil {
		return fmt.Errorf("cluster: restore: open the restored store: %w", err)
	}
	s.st = st
	s.setFormat(st.ClusterFormat())
	return nil
}

// cur is the current Pebble store, for the FSM (which never runs beside a
// restore: Raft serialises them).
func (s *replStore) cur() *pebblestore.Store {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st
}

func (s *replStore) LoadSessions(fn func(*store.SessionState) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.LoadSessions(fn)
}

func (s *replStore) LoadRetained(fn func(*store.Message) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.LoadRetained(fn)
}

func (s *replStore) ReadQueue(clientID string, afterSeq uint64, limit int, fn func(store.QueueEntry, *store.Message) bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.ReadQueue(clientID, afterSeq, limit, fn)
}

func (s *replStore) ReadQueueEntries(clientID string, afterSeq uint64, limit int, fn func(store.QueueEntry, int64) bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.ReadQueueEntries(clientID, afterSeq, limit, fn)
}

// NextMessageID is the local store's: every applied entry moved it past
// the IDs the entry holds, and a leader serves only once it applied every
// entry of earlier terms (Node.Serving).
func (s *replStore) NextMessageID() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.NextMessageID()
}

func (s *replStore) Stats() store.Stats {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.st.Stats()
}

// DiskUsage is the member's use of its volume: the store, plus the Raft
// log and snapshots (raft/: each snapshot is a copy of the store, and two
// are kept), which count against the store budget like the store's own
// files. The room the next snapshot will take, a copy of the store as it
// is, is Reserved: the volume must keep it free beyond the broker's
// reserve, or new offline messages are refused (the member's own state
// then still fits, and snapshots keep the log short).
func (s *replStore) DiskUsage() (store.DiskUsage, error) {
	s.mu.RLock()
	u, err := s.st.DiskUsage()
	s.mu.RUnlock()
	if err != nil {
		return u, err
	}
	u.Reserved = u.Used
	raft, err := treeBytes(filepath.Join(s.dir, "raft"))
	if err != nil {
		return u, fmt.Errorf("cluster: disk usage: %w", err)
	}
	u.Used += raft
	return u, nil
}

// treeBytes totals the sizes of the regular files under dir (files that
// disappear meanwhile, as Pebble's and the snapshots' do, are skipped).
func treeBytes(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n += fi.Size()
		}
		return nil
	})
	return n, err
}

// Commit replicates b: it returns nil once a majority of the members has
// the batch in its log on disk and this member applied it, the store's
// refusal of the batch (alike on every member), or ErrNotLeader. ctx is
// checked before the batch enters the log; after that Commit waits for its
// outcome.
func (s *replStore) Commit(ctx context.Context, b *store.Batch) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("cluster: commit: %w", err)
	}
	data, err := b.MarshalBinaryFormat(int(s.writeFormat()))
	if err != nil {
		return fmt.Errorf("cluster: commit: %w: %w", store.ErrInvalid, err)
	}
	if s.stopped() {
		return fmt.Errorf("cluster: commit: %w", store.ErrClosed)
	}
	res, err := s.apply(data, b, false)
	if err != nil {
		return err
	}
	return s.outcome(res)
}

func (s *replStore) stopped() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitOutcomes answers every pending commit the FSM did not answer (those
// that failed: not committed, or Raft stopped), one after the other: Raft
// answers entries in log order, so one waiter per member keeps up, and no
// commit starts a goroutine. It returns when the member stops; an entry
// queued as Raft shut down is never answered, and the waiter may stay
// blocked on it (its committer ended on done).
func (s *replStore) waitOutcomes() {
	for {
		select {
		case p := <-s.pending:
			err := applyOutcome(p.f)
			if e := s.takeOwn(p.key); e.res != nil {
				e.res <- err
			}
		case <-s.done:
			return
		}
	}
}

// apply puts data, the encoding of b, in the log (after the entries
// held back, see hold) and hands its future to waitOutcomes; it returns
// where the outcome arrives. b must not change until then; merged: b is
// from mergedBatches (see ownEntry).
func (s *replStore) apply(data []byte, b *store.Batch, merged bool) (<-chan error, error) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	s.releaseHeldLocked()
	res := make(chan error, 1)
	if !s.applyLocked(data, ownEntry{b: b, res: res, merged: merged}) {
		return nil, errStoppedUnknown
	}
	return res, nil
}

// applyLocked puts one entry in the log; s.applyMu is held. It returns
// false when the member stopped first (the outcome never arrives on e.res).
func (s *replStore) applyLocked(data []byte, e ownEntry) bool {
	key := &data[0] // an encoded batch is never empty
	s.inflight.Add(1)
	s.setOwn(key, e)
	p := pendingCommit{f: s.raft.Apply(data, s.applyTimeout), key: key, res: e.res}
	select {
	case s.pending <- p:
		return true
	case <-s.done:
		// Never answered: the entry stays in own, as the member stops.
		return false
	}
}

// A batch that acknowledges nothing to a client (every one of the group
// is NoSync: the Dequeues of acknowledged deliveries, marks of sent
// messages) is held back, until holdMax of them wait, and put in the log
// just before the next entry: both then share the leader's fsync and the
// append round to the followers, instead of the held one taking a round
// of its own that the next entry (a publish a client waits for) queues
// behind. Without a next entry it goes alone once holdFor passed since it
// was held and since the latest outcome of an entry of this member, and
// no entry is in flight (holdLeft): a subscriber's acknowledgement often
// arrives just after the next publish went into the log, and its Dequeue
// must then wait for the publish after that one, which comes only once
// the one in flight is answered; released by a timer meanwhile, it would
// hold the leader's Raft loop in its fsync as the answer arrives, and
// the next publish behind it (under load it did for about a fifth of the
// messages of a window-1 publisher). A hold never exceeds holdLimit
// times holdFor. It is still committed and applied in order before every
// later entry; its wait returns once it is, as before. A member that
// stops meanwhile answers its wait with errStoppedUnknown, as for an
// entry in flight (NoSync allows losing it, as a crash of a single node
// may).
const (
	holdMax   = 8
	holdLimit = 10
)

// holdFor is how long a NoSync entry waits for a next one after the
// entries in flight were answered (a variable for tests).
var holdFor = 2 * time.Millisecond

// holdLeft is how much longer the held entries may wait for a next entry
// (0: put them in the log now); s.applyMu is held.
func (s *replStore) holdLeft() time.Duration {
	now := time.Since(epoch)
	limit := s.heldSince + holdLimit*holdFor - now
	if limit <= 0 {
		return 0
	}
	if s.inflight.Load() > 0 {
		return min(holdFor, limit) // look again then: the outcome's moment is unknown
	}
	since := max(s.heldSince, time.Duration(s.lastOutcome.Load()))
	return max(0, min(since+holdFor-now, limit))
}

// heldEntry is a NoSync entry held back.
type heldEntry struct {
	data []byte
	ownEntry
}

// hold queues a NoSync entry and returns where its outcome arrives.
func (s *replStore) hold(data []byte, b *store.Batch, merged bool) <-chan error {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if len(s.held) >= holdMax {
		s.releaseHeldLocked()
	}
	res := make(chan error, 1)
	s.held = append(s.held, heldEntry{data: data, ownEntry: ownEntry{b: b, res: res, merged: merged}})
	if len(s.held) == 1 {
		s.heldSince = time.Since(epoch)
		if s.holdTimer == nil {
			s.holdTimer = time.AfterFunc(holdFor, s.releaseHeld)
		} else {
			s.holdTimer.Reset(holdFor)
		}
	}
	return res
}

// releaseHeld puts the held entries in the log when their hold is over
// (the timer's end), else sets the timer again.
func (s *replStore) releaseHeld() {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if len(s.held) == 0 {
		return
	}
	if d := s.holdLeft(); d > 0 && !s.stopped() {
		s.holdTimer.Reset(d)
		return
	}
	s.releaseHeldLocked()
}

func (s *replStore) releaseHeldLocked() {
	for i := range s.held {
		h := &s.held[i]
		if !s.applyLocked(h.data, h.ownEntry) {
			break // stopped: the rest are never answered, their waits end on done
		}
	}
	clear(s.held)
	s.held = s.held[:0]
}

var errStoppedUnknown = fmt.Errorf("cluster: commit: outcome unknown, the member stopped: %w", store.ErrClosed)

// outcome waits for the outcome on res, or for the member to stop.
func (s *replStore) outcome(res <-chan error) error {
	select {
	case err := <-res:
		return err
	case <-s.done:
		select {
		case err := <-res: // answered as the member stopped
			return err
		default:
			return errStoppedUnknown
		}
	}
}

// applyOutcome waits for an applied entry and turns Raft's outcome into
// the store's.
func applyOutcome(f raft.ApplyFuture) error {
	if err := f.Error(); err != nil {
		switch {
		case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
			errors.Is(err, raft.ErrLeadershipTransferInProgress), errors.Is(err, raft.ErrAbortedByRestore):
			return fmt.Errorf("%w: %w", ErrNotLeader, err)
		case errors.Is(err, raft.ErrRaftShutdown):
			return fmt.Errorf("cluster: commit: %w: %w", store.ErrClosed, err)
		}
		return fmt.Errorf("cluster: commit: %w", err)
	}
	if err, ok := f.Response().(error); ok && err != nil {
		return err
	}
	return nil
}

var _ store.Pipeliner = (*replStore)(nil)

// CommitNoWait puts bs in the log as one entry (their operations in
// order, applied atomically) and returns at once; wait returns when a
// majority has it on disk and this member applied it, with Commit's
// outcome. The engine's committer keeps several entries in flight, which
// Raft writes and replicates together (one fsync per member for all of
// them). Reads see the batch once wait returned. A refusal of the entry by
// the store (found when it is applied) fails the whole group.
func (s *replStore) CommitNoWait(ctx context.Context, bs ...*store.Batch) (func() error, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("cluster: commit: %w", err)
	}
	b := bs[0]
	noSync := true
	for _, x := range bs {
		noSync = noSync && x.NoSync
	}
	merged := len(bs) > 1
	if merged {
		b = mergedBatches.Get().(*store.Batch)
		mergeInto(b, bs)
		b.NoSync = noSync
	}
	data, err := b.MarshalBinaryFormat(int(s.writeFormat()))
	if err != nil {
		return nil, fmt.Errorf("cluster: commit: %w: %w", store.ErrInvalid, err)
	}
	if s.stopped() {
		return nil, fmt.Errorf("cluster: commit: %w", store.ErrClosed)
	}
	if noSync {
		res := s.hold(data, b, merged)
		return func() error { return s.outcome(res) }, nil
	}
	res, err := s.apply(data, b, merged)
	if err != nil {
		return nil, err
	}
	return func() error { return s.outcome(res) }, nil
}

// Close closes the local store. The Node closes Raft first.
func (s *replStore) Close() error {
	s.applyMu.Lock()
	if s.holdTimer != nil {
		s.holdTimer.Stop()
	}
	s.applyMu.Unlock()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Close()
}

var (
	_ store.FsyncReporter = (*replStore)(nil)
	_ store.StallReporter = (*replStore)(nil)
	_ store.LSMReporter   = (*replStore)(nil)
)

// LSM implements store.LSMReporter with the member's current Pebble store.
func (s *replStore) LSM() (store.LSMStats, bool) {
	st := s.cur()
	if st == nil {
		return store.LSMStats{}, false
	}
	return st.LSM()
}

// WriteStalls implements store.StallReporter with the member's Pebble
// store's stalls, counted across its reopenings (a snapshot installed).
func (s *replStore) WriteStalls() store.StallSnapshot {
	if s.opts.Stalls == nil {
		return store.StallSnapshot{}
	}
	return s.opts.Stalls.Snapshot(time.Now())
}

// FsyncLatency implements store.FsyncReporter with the syncs of the
// member's Raft log: the fsync a leader's acknowledgements wait for (then
// a follower's); the store itself is not synced per entry. Exported as
// bollard_store_fsync_duration_seconds, as a single node's store's are.
func (s *replStore) FsyncLatency() store.LatencySnapshot {
	if s.logFsyncs == nil {
		return store.LatencySnapshot{}
	}
	return s.logFsyncs.Snapshot()
}
