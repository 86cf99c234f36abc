package store

// LSMStats is the shape of a store's log-structured merge tree at one
// moment: what waits for a flush and for compactions, which is what an
// operator who sees write stalls needs to tell a slow disk from a write
// rate the compactions cannot follow.
type LSMStats struct {
	// L0Files and L0Sublevels are the files in level 0 and the sublevels
	// they make (a read looks at each sublevel; writes stop at a bound).
	L0Files     int64
	L0Sublevels int64
	// L0StopWritesSublevels is the sublevel count at which the store stops
	// every write until compactions bring it down (0: no such bound): how
	// near L0Sublevels is to it is how near the store is to a write stall.
	L0StopWritesSublevels int64
	// Memtables and MemtableBytes count the memtables, the one being
	// filled included, and their size: more than two mean flushes lag.
	Memtables     int64
	MemtableBytes int64
	// CompactionDebtBytes is the store's estimate of the bytes compactions
	// must still rewrite to bring the tree back to its shape.
	CompactionDebtBytes int64
	// Flushes and Compactions count those finished since the store opened;
	// FlushesRunning and CompactionsRunning those in progress.
	Flushes, Compactions               int64
	FlushesRunning, CompactionsRunning int64
}

// LSMReporter is implemented by stores built on an LSM tree.
type LSMReporter interface {
	// LSM reports the tree's shape now; false when it cannot be read (the
	// store is closed or failed): no figure rather than a made-up one.
	LSM() (LSMStats, bool)
}
