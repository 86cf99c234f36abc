package cluster

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// fsm applies committed log entries to the member's own Pebble store. Raft
// calls Apply, Snapshot and Restore from one goroutine, in log order.
type fsm struct {
	log     *slog.Logger
	st      *replStore
	dir     string // the cluster directory: store/, checkpoints/, store.incoming
	ckptSeq atomic.Uint64
	fatal   func(error) // stops the member: its store can no longer follow the log
	// stopped is set once an entry could not be followed (a newer
	// format): nothing after it is applied, so the store never skips an
	// entry; a build that reads it replays from there.
	stopped atomic.Bool
	// logs is the member's Raft log, and checked whether the store's last
	// applied entry was compared with it since the start or the last
	// restore (see diverged).
	logs    raft.LogStore
	checked bool
	decoded atomic.Uint64 // entries decoded from the log (not the leader's own batch)
	// dec and batches are reused by every ApplyBatch (Raft calls it from
	// one goroutine): a follower decodes each entry's queue entries into
	// the same memory over and over instead of allocating them.
	dec     store.Decoder
	batches []store.Batch
	// reads is the highest entry format this member reads (format.go; 0:
	// the build's, store.BatchFormat).
	reads uint8
}

var _ raft.BatchingFSM = (*fsm)(nil)

// Apply implements raft.FSM. It returns nil, or the error the store
// refused the batch with (every member refuses it alike); Commit hands it
// to the caller on the leader.
func (f *fsm) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	if f.stopped.Load() || f.diverged(l.Index) {
		return errStopped
	}
	if v, ok := store.ParseFormatEntry(l.Data); ok {
		return f.applyFormat(l, v)
	}
	if f.unreadable(l) {
		return errStopped
	}
	var b store.Batch
	if err := b.UnmarshalBinary(l.Data); err != nil {
		if errors.Is(err, store.ErrNewerFormat) {
			f.stopNewer(l.Index, err)
			return errStopped
		}
		// Written by a leader, so alike everywhere: refuse it alike,
		// recording its index so it is not replayed.
		_ = f.st.cur().ApplyReplicated(l.Index, &store.Batch{})
		return err
	}
	err := f.st.cur().ApplyReplicatedTerm(l.Index, l.Term, &b)
	if errors.Is(err, pebblestore.ErrApply) || errors.Is(err, store.ErrClosed) {
		f.fatal(fmt.Errorf("apply log entry %d: %w", l.Index, err))
	}
	return err
}

// stopNewer stops the member at entry index, written in a format this
// build does not read.
func (f *fsm) stopNewer(index uint64, err error) {
	f.stop(fmt.Errorf("log entry %d was written by a newer build: upgrade this member (%w)", index, err))
}

// unreadable stops the member at l when it is a batch in a format above
// what this member reads (format.go; the decoder itself reads every
// format of the build, a member configured to read less must stop as an
// earlier build would).
func (f *fsm) unreadable(l *raft.Log) bool {
	if f.reads == 0 || len(l.Data) == 0 || l.Data[0] <= f.reads {
		return false
	}
	f.stopNewer(l.Index, fmt.Errorf("%w: version %d, this member reads %d at most", store.ErrNewerFormat, l.Data[0], f.reads))
	return true
}

// applyFormat applies a format entry (format.go): the store records the
// cluster's new format, and this member encodes its entries in it from
// now on; a member that does not read it stops before it.
func (f *fsm) applyFormat(l *raft.Log, v uint8) any {
	reads := f.reads
	if reads == 0 {
		reads = store.BatchFormat
	}
	if v > reads {
		f.stop(fmt.Errorf("%w: log entry %d raises the cluster's log entry format to %d, this member reads format %d at most: "+
			"upgrade this member (a member cannot go back to an earlier build once its cluster writes a newer format)",
			store.ErrNewerFormat, l.Index, v, reads))
		return errStopped
	}
	st := f.st.cur()
	if err := st.ApplyReplicatedFormat(l.Index, l.Term, v); err != nil {
		f.fatal(fmt.Errorf("apply log entry %d: %w", l.Index, err))
		return err
	}
	f.st.setFormat(st.ClusterFormat())
	return nil
}

// ApplyBatch implements raft.BatchingFSM: Raft hands over the entries
// committed together (up to MaxAppendEntries), and their commands are
// applied to the store as one Pebble batch when it accepts them all (see
// pebblestore.Store.ApplyReplicatedBatch), each with the outcome Apply
// would have given it. A format entry is applied on its own, in order.
func (f *fsm) ApplyBatch(logs []*raft.Log) []any {
	out := make([]any, len(logs))
	a := applying{out: out, idx: make([]uint64, 0, len(logs)), terms: make([]uint64, 0, len(logs)),
		bs: make([]*store.Batch, 0, len(logs)), at: make([]int, 0, len(logs))}
	if len(f.batches) < len(logs) {
		f.batches = make([]store.Batch, len(logs))
	}
	defer f.recycle()
	if f.stopped.Load() || (len(logs) > 0 && f.diverged(logs[len(logs)-1].Index)) {
		for i := range out {
			out[i] = errStopped
		}
		return out
	}
	stopAt := len(logs) // the first entry this member cannot read
	for i, l := range logs {
		if l.Type != raft.LogCommand {
			continue
		}
		if v, ok := store.ParseFormatEntry(l.Data); ok {
			f.applyCollected(logs, &a)
			if out[i] = f.applyFormat(l, v); f.stopped.Load() {
				stopAt = i
				break
			}
			continue
		}
		if f.unreadable(l) {
			stopAt = i
			break
		}
		b := f.st.ownBatch(l.Data) // this leader's own entry: no need to decode it
		if b == nil {
			f.decoded.Add(1)
			b = &f.batches[i]
			if err := f.dec.Decode(b, l.Data); err != nil {
				if errors.Is(err, store.ErrNewerFormat) {
					// Not refused alike: a newer leader wrote what this
					// build cannot read. Applying it as empty would leave
					// this store behind the others, silently.
					f.stopNewer(l.Index, err)
					stopAt = i
					break
				}
				// Refused alike everywhere: applied as an empty batch (its
				// index is recorded, so it is not replayed).
				out[i] = err
				b.Reset()
			}
		}
		a.idx, a.terms, a.bs, a.at = append(a.idx, l.Index), append(a.terms, l.Term), append(a.bs, b), append(a.at, i)
	}
	f.applyCollected(logs, &a)
	for i := stopAt; i < len(logs); i++ {
		out[i] = errStopped
	}
	return out
}

// applying is the batches ApplyBatch collected to apply together.
type applying struct {
	out   []any
	idx   []uint64
	terms []uint64
	bs    []*store.Batch
	at    []int // position in logs of each of bs
}

// applyCollected applies the batches collected in a as one, sets their
// outcomes, and empties a.
func (f *fsm) applyCollected(logs []*raft.Log, a *applying) {
	if len(a.bs) == 0 {
		return
	}
	errs := f.st.cur().ApplyReplicatedBatchTerms(a.idx, a.terms, a.bs)
	failed := false
	for j, err := range errs {
		if !failed && (errors.Is(err, pebblestore.ErrApply) || errors.Is(err, store.ErrClosed)) {
			failed = true
			f.fatal(fmt.Errorf("apply log entry %d: %w", a.idx[j], err))
		}
		if a.out[a.at[j]] == nil && err != nil {
			a.out[a.at[j]] = err
		}
	}
	for _, i := range a.at {
		f.st.answerOwn(logs[i].Data, a.out[i]) // the leader's own entries: their committers learn now
	}
	a.idx, a.terms, a.bs, a.at = a.idx[:0], a.terms[:0], a.bs[:0], a.at[:0]
}

// diverged reports whether the member must stop before applying entries up
// to last because its store does not hold this log's history: the entry
// the store applied last has another term in the log than the store
// recorded. That is a store from another history of the cluster (a member
// left out of a quorum recovery, back with its old data, whose log the
// leader overwrote): replaying would skip the entries up to its applied
// index, which are not the ones it applied, and leave it silently apart.
// It is checked once after a start or a restore, before the first entry
// past the store's applied index, when the log still holds that entry and
// the store recorded its term.
func (f *fsm) diverged(last uint64) bool {
	if f.checked {
		return false
	}
	st := f.st.cur()
	applied, term := st.AppliedIndex(), st.AppliedTerm()
	if last <= applied {
		return false // a replay of entries applied before: not yet past them
	}
	f.checked = true
	if applied == 0 || term == 0 || f.logs == nil {
		return false
	}
	var e raft.Log
	if err := f.logs.GetLog(applied, &e); err != nil || e.Term == term {
		return false // compacted into a snapshot, or the same history
	}
	f.stop(fmt.Errorf("%w: the store applied entry %d of term %d, the cluster's log has term %d there: "+
		"this member's data is from another history of the cluster (left out of a quorum recovery?); "+
		"empty its data directory to rejoin from a snapshot", ErrDiverged, applied, term, e.Term))
	return true
}

// ErrDiverged is the error a member stops with when its store does not
// hold the cluster's history (see fsm.diverged).
var ErrDiverged = errors.New("cluster: the store diverged from the cluster's log")

// errStopped answers the entries a member stopped at (see fsm.stop).
var errStopped = errors.New("cluster: this member stopped following the log")

// stop makes the member stop, with err, at an entry it must not apply
// (a newer build's, or one of another history): nothing from it on is
// applied, so the store's applied index stays before it, and the member
// closes.
func (f *fsm) stop(err error) {
	if !f.stopped.Swap(true) {
		f.fatal(err)
	}
}

// recycle releases what ApplyBatch decoded (the store keeps no reference
// to a batch's records once applied) for the next call to reuse: the
// operations and entries are the decoder's (store.Decoder bounds what it
// keeps).
func (f *fsm) recycle() {
	for i := range f.batches {
		f.batches[i] = store.Batch{}
	}
	f.dec.Reset()
}

// Snapshot implements raft.FSM: a Pebble checkpoint taken now (no Apply
// runs meanwhile), streamed later by Persist. The live store is synced
// first, so a restart never finds it behind a snapshot whose log entries
// Raft may have compacted away.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	st := f.st.cur()
	if err := st.Sync(bg); err != nil {
		return nil, fmt.Errorf("cluster: snapshot: %w", err)
	}
	dir := filepath.Join(f.dir, "checkpoints", strconv.FormatUint(f.ckptSeq.Add(1), 10))
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return nil, err
	}
	_ = os.RemoveAll(dir)
	if err := st.Checkpoint(dir); err != nil {
		return nil, fmt.Errorf("cluster: snapshot: %w", err)
	}
	return &checkpoint{dir: dir}, nil
}

// Restore implements raft.FSM: the member's store is replaced by the
// snapshot's (a leader sent it because this member is too far behind).
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	t0 := time.Now()
	cr := &countingReader{r: rc}
	if err := f.st.restore(func(dir string) error { return untar(cr, dir) }); err != nil {
		f.log.Error("installing the leader's snapshot failed", "bytes", cr.n, "err", err)
		return err
	}
	f.log.Info("installed a snapshot from the leader", "appliedIndex", f.st.cur().AppliedIndex(),
		"bytes", cr.n, "took", time.Since(t0).String())
	f.checked = false
	return nil
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// checkpoint is one snapshot's Pebble checkpoint.
type checkpoint struct{ dir string }

// Persist streams the checkpoint as a tar archive into the sink.
func (c *checkpoint) Persist(sink raft.SnapshotSink) error {
	if err := tarDir(c.dir, sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("cluster: persist snapshot: %w", err)
	}
	return sink.Close()
}

// Release removes the checkpoint.
func (c *checkpoint) Release() { _ = os.RemoveAll(c.dir) }

// tarDir writes the regular files under dir (one level: a Pebble store has
// no subdirectories) as a tar stream.
func tarDir(dir string, w io.Writer) error {
	tw := tar.NewWriter(w)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			return fmt.Errorf("unexpected %s in checkpoint %s", e.Type(), e.Name())
		}
		if err := tarFile(tw, filepath.Join(dir, e.Name()), e.Name()); err != nil {
			return err
		}
	}
	return tw.Close()
}

func tarFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: fi.Size(), Typeflag: tar.TypeReg}); err != nil {
		return err
	}
	_, err = io.Copy(tw, f)
	return err
}

// untar writes a snapshot's files into dir (created), refusing anything
// but plain file names, and fsyncs them.
func untar(r io.Reader, dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("cluster: read snapshot: %w", err)
		}
		if h.Typeflag != tar.TypeReg || h.Name != filepath.Base(h.Name) || h.Name == "." || h.Name == ".." || strings.ContainsAny(h.Name, `/\`) {
			return fmt.Errorf("cluster: read snapshot: %w: entry %q", store.ErrCorrupt, h.Name)
		}
		if err := writeFile(filepath.Join(dir, h.Name), tr); err != nil {
			return err
		}
	}
	return syncDir(dir)
}

func writeFile(path string, r io.Reader) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
