package pebblestore

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/bollard-io/bollard/broker/store"
)

// Durability selects when Commit returns relative to the fsync of the batch.
type Durability int

const (
	// Sync: Commit returns once the batch is fsynced. Concurrent commits
	// share one WAL fsync (group commit).
	Sync Durability = iota
	// Interval: Commit returns once the batch is in Pebble's WAL buffer
	// and memtable; a background goroutine writes out and fsyncs the WAL
	// every Options.Interval. Pebble buffers unsynced WAL records in the
	// process, so a crash of the process or of the machine loses at most
	// the writes of the last interval plus one fsync.
	Interval
)

// DefaultInterval is the fsync period of Interval durability.
const DefaultInterval = 100 * time.Millisecond

// Options configure Open. The zero value is Sync durability with defaults.
type Options struct {
	Durability Durability
	// Interval is the fsync period for Interval durability
	// (DefaultInterval when 0).
	Interval time.Duration
	// Logger receives Pebble's messages and background errors
	// (slog.Default() when nil).
	Logger *slog.Logger
	// CacheSize is Pebble's block cache in bytes (DefaultCacheSize when 0).
	CacheSize int64
	// NoWAL turns Pebble's write-ahead log off, for a store every write
	// of which another log replays after a crash: a cluster member's
	// (ApplyReplicated*, whose entries the Raft log keeps durable). A
	// crash then loses what was not flushed yet, and the replay of the
	// Raft log from the store's applied index writes it again; it saves
	// each member writing every entry twice. What must be durable at once
	// (Close, Sync, Checkpoint, the format version) flushes the memtables
	// instead of syncing the log. Commit gets no durability of its own
	// then, so NoWAL needs Interval durability (whose fsync loop it
	// stops).
	NoWAL bool
	// LargestWrite is the largest single message the store is expected to
	// take, in bytes (the broker's maximum packet size; 0: one memtable).
	// Pebble stops every write while the memtables waiting for a flush
	// hold more than MemTableStopWritesThreshold memtables' worth, and a
	// batch larger than half a memtable waits as a memtable of its own
	// size: one 12 MiB message used to stop every publisher's commit until
	// it was flushed. The stop threshold leaves room for one such write
	// beside the usual two memtables; a stream of them still stops writes,
	// so what the flushes leave behind stays bounded.
	LargestWrite int64
	// MemTableSize is the size of each of Pebble's memtables, between
	// MinMemTableSize and MaxMemTableSize (DefaultMemTableSize when 0).
	// Larger ones flush and compact less for the same writes, and cost
	// their size in memory (the usual two live on the Go heap).
	MemTableSize int64
	// Stalls counts the store's write stalls (WriteStalls); a store of its
	// own when nil. A store that is closed and opened again with the same
	// Options goes on counting in it.
	Stalls *store.Stalls

	fs vfs.FS // tests inject faults here; vfs.Default when nil
}

// ErrFormatVersion is returned by Open for a store written by an
// incompatible version of this package.
var ErrFormatVersion = errors.New("pebblestore: unsupported format version")

// Store is the durable store.Store on Pebble. Open it with Open.
type Store struct {
	db     *pebble.DB
	dir    string
	opts   Options
	log    *slog.Logger
	nextID atomic.Uint64

	// mu serialises commits (validation and the write into the memtable,
	// not the fsync wait) and guards the fields below.
	mu       sync.Mutex
	closed   bool
	failed   error // sticky: a write failed, the store refuses commits
	poisoned bool  // Pebble panicked: its internal locks may be held
	sessions map[string]*sessInfo
	stats    store.Stats
	idMark   uint64 // value of meta/msgid
	applied  uint64 // value of meta/applied (replica.go)
	// appliedTerm is the Raft term of entry applied (0: not recorded, a
	// store written before terms were, or an adopted one).
	appliedTerm uint64
	// clusterFormat is the value of meta/clusterformat (replica.go).
	clusterFormat uint8
	cache         caches
	msgs          msgCache // decoded shared messages, for queue reads
	// maxStored is at least the highest message ID ever stored: a
	// message put with a higher ID cannot exist, so it is not looked up.
	maxStored uint64
	// sharedRefs is the number of queue entries that refer to m/
	// messages, counted by recovery to check the reference counts.
	sharedRefs int64
	scratch    scratch // for commits, under mu
	// fsyncs times the fsyncs of the write-ahead log (FsyncLatency).
	fsyncs store.Latencies
	// statsSnap is a copy of stats for Stats, replaced by every commit.
	statsSnap atomic.Pointer[store.Stats]
	ops       sync.WaitGroup // operations using db; Close waits for them
	dirty     atomic.Bool    // Interval: something was written since the last fsync

	stopSync chan struct{}
	syncDone sync.WaitGroup
}

// sessInfo is what the store keeps in memory per session: enough to
// validate enqueues and to report QueueStats without reading the queue.
type sessInfo struct {
	lastSeq uint64 // highest seq ever enqueued
	floor   uint64 // value of the l/ key (0: none)
	msgs    int64
	bytes   int64
	// modGen is the cache generation of the last commit that changed or
	// removed existing entries of the session (or created it).
	modGen uint64
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store in dir. It fails with an error wrapping
// store.ErrCorrupt when the store cannot be read back consistently; it
// never resets a store.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Interval <= 0 {
		opts.Interval = DefaultInterval
	}
	if m := opts.MemTableSize; m != 0 && (m < MinMemTableSize || m > MaxMemTableSize) {
		return nil, fmt.Errorf("pebblestore: open %s: a memtable of %d bytes: it must be between %d and %d", dir, m, int64(MinMemTableSize), int64(MaxMemTableSize))
	}
	if opts.NoWAL && opts.Durability != Interval {
		return nil, fmt.Errorf("pebblestore: open %s: NoWAL needs Interval durability (every write is replayed from another log)", dir)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Stalls == nil {
		opts.Stalls = &store.Stalls{}
	}
	s := &Store{dir: dir, opts: opts, log: opts.Logger.With("component", "pebblestore", "dir", dir), sessions: make(map[string]*sessInfo)}
	s.cache.init()
	db, err := pebble.Open(dir, s.pebbleOptions())
	if err != nil {
		if pebble.IsCorruptionError(err) {
			return nil, fmt.Errorf("pebblestore: open %s: %w: %w", dir, store.ErrCorrupt, err)
		}
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s.db = db
	if err := s.recover(); err != nil {
		_ = db.Close() // the recovery error is the one to report
		return nil, err
	}
	if opts.Durability == Interval && !opts.NoWAL {
		s.stopSync = make(chan struct{})
		s.syncDone.Add(1)
		go s.syncLoop()
	}
	return s, nil
}

func (s *Store) pebbleOptions() *pebble.Options {
	o := &pebble.Options{
		FS:                 s.opts.fs,
		CacheSize:          s.opts.CacheSize,
		FormatMajorVersion: pebble.FormatValueSeparation,
		Logger:             logger{s.log},
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) { s.log.Error("pebble background error", "err", err) },
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				s.opts.Stalls.Begin(time.Now())
				s.log.Warn("pebble write stall", "reason", info.Reason)
			},
			WriteStallEnd: func() { s.opts.Stalls.End(time.Now()) },
			DiskSlow: func(info pebble.DiskSlowInfo) {
				s.log.Warn("slow disk operation", "path", info.Path, "duration", info.Duration)
			},
		},
	}
	if o.FS == nil {
		o.FS = vfs.Default
	}
	o.FS = timedFS{FS: o.FS, lat: &s.fsyncs}
	if o.CacheSize <= 0 {
		o.CacheSize = DefaultCacheSize
	}
	// Queue entries are written in bursts (a fan-out) and mostly deleted
	// soon after (a drain): a later L0 compaction lets more of them die
	// before they are compacted at all. Memtables are small by default
	// (2 x 4 MiB): larger ones queue faster (fewer flushes, fewer L0
	// compactions) but, without cgo, live on the Go heap; 16 MiB x 3 raised
	// the RSS with a million queued messages by ~80 MB, also after a
	// restart. So the size is the caller's (Options.MemTableSize: the
	// broker's follows its memory limit). (Bloom filters were tried and
	// removed: reading their blocks cost more than they saved.)
	//
	// L0 is compacted once its files make more than 8 sublevels
	// (l0CompactionDepth, Pebble's read amplification), not 2 as by
	// Pebble's default: a fan-out writes every session's queue, so each
	// flushed file spans the whole queue key space (one sublevel each) and
	// each L0 compaction rewrites most of the level below; waiting for
	// more files means fewer of those rewrites. In a 3-member cluster,
	// where every member compacts the same writes on shared cores, going
	// from 4 sublevels to 8 (ee96917) took the ingest row to 0.77-0.79x the
	// CPU per message (docs/durability.md); the single node's rows did not
	// move. 16 sublevels were tried and left: the full-queues row (DropOldest
	// reads every queue's front) took 1.16x the CPU. A read (a queue page)
	// looks at every sublevel. BollardStoreCompactionBehind warns at half
	// of l0StopWritesSublevels.
	mt := s.opts.memTableSize()
	o.MemTableSize = uint64(mt)
	o.MemTableStopWritesThreshold = stopWritesThreshold(s.opts.LargestWrite, mt)
	o.L0CompactionThreshold = 2 * l0CompactionDepth // see l0CompactionDepth
	o.L0StopWritesThreshold = l0StopWritesSublevels
	o.LBaseMaxBytes = 128 << 20
	o.DisableWAL = s.opts.NoWAL
	return o
}

// DefaultCacheSize is Pebble's block cache when Options.CacheSize is 0.
const DefaultCacheSize = 16 << 20

// l0CompactionDepth is the most level-0 sublevels Pebble lets flushes
// make before it compacts L0 into the level below, and
// l0StopWritesSublevels those at which it stops every write
// (Options.L0StopWritesThreshold; see pebbleOptions). Pebble scores L0 at
// twice its depth over Options.L0CompactionThreshold (its
// calculateL0FillFactor) and compacts past a score of 1, so the option is
// twice the depth (TestL0CompactionDepth holds Pebble to it).
const (
	l0CompactionDepth     = 8
	l0StopWritesSublevels = 64
)

// The size of one Pebble memtable: DefaultMemTableSize unless
// Options.MemTableSize says otherwise, between MinMemTableSize and
// MaxMemTableSize. The broker's own choice is config.Limits'
// StoreMemTableBytes.
const (
	DefaultMemTableSize = 4 << 20
	MinMemTableSize     = 1 << 20
	MaxMemTableSize     = 1 << 30
)

func (o Options) memTableSize() int64 { return cmp.Or(o.MemTableSize, DefaultMemTableSize) }

// stopWritesThreshold is Pebble's MemTableStopWritesThreshold for a store
// whose largest write is largest bytes (Options.LargestWrite) and whose
// memtables are memTable bytes: the two memtables of the usual rotation
// (one filling, one flushing), plus the memtables' worth of one largest
// write and of the memtable that rotates out beside it. A write that fits
// in half a memtable needs no more.
func stopWritesThreshold(largest, memTable int64) int {
	const usual = 2
	if largest <= memTable/2 {
		return usual
	}
	return usual + 1 + int((largest+memTable-1)/memTable)
}

// logger adapts slog to Pebble. Fatalf panics instead of exiting the
// process: Pebble calls it for failures it cannot survive (for example a
// failed MANIFEST write on a full disk); a panic inside Commit is turned
// into an error by Commit, one in a background goroutine stops the process
// as Pebble intends. Either way the files on disk stay consistent.
type logger struct{ l *slog.Logger }

func (l logger) Infof(format string, args ...any)  { l.l.Debug(fmt.Sprintf(format, args...)) }
func (l logger) Errorf(format string, args ...any) { l.l.Error(fmt.Sprintf(format, args...)) }
func (l logger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.l.Error("pebble fatal error", "err", msg)
	panic("pebblestore: fatal: " + msg)
}

// enter registers an operation that uses the database.
func (s *Store) enter() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return store.ErrClosed
	}
	s.ops.Add(1)
	return nil
}

// NextMessageID returns a new message ID, greater than every ID issued or
// committed before, including before a restart.
func (s *Store) NextMessageID() uint64 { return s.nextID.Add(1) }

// Stats summarises the store. It takes no lock: publishers check the
// store budget on every publish and must not wait for a running commit.
func (s *Store) Stats() store.Stats {
	if st := s.statsSnap.Load(); st != nil {
		return *st
	}
	return store.Stats{}
}

// Close waits for running operations, fsyncs and closes the database.
// Calling other methods from a ReadQueue callback is fine; calling Close
// from one deadlocks.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	s.closed = true
	failed, poisoned := s.failed, s.poisoned
	s.mu.Unlock()
	if s.stopSync != nil {
		close(s.stopSync)
		s.syncDone.Wait()
	}
	s.ops.Wait()
	if poisoned {
		// Pebble's commit pipeline may hold its locks; closing could hang.
		return fmt.Errorf("pebblestore: close %s: not closed after a fatal write error: %w", s.dir, failed)
	}
	var errs []error
	if failed == nil {
		errs = append(errs, s.closeWrite())
	}
	errs = append(errs, safe(s.db.Close))
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pebblestore: close %s: %w", s.dir, err)
	}
	return failed
}

// closeWrite records the exact message ID counter and fsyncs everything.
func (s *Store) closeWrite() error {
	b := s.db.NewBatch()
	if err := b.Set(keyMsgID, be64(s.nextID.Load()), nil); err != nil {
		return err
	}
	return s.writeSync(b)
}
