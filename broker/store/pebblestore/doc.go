// Package pebblestore is the durable store.Store, on Pebble
// (github.com/cockroachdb/pebble/v2): one database directory holding
// sessions, subscriptions, offline queues with their inflight state,
// inbound QoS 2 state and retained messages.
//
// Durability: in Sync mode (the default) Commit returns after the batch is
// in the fsynced write-ahead log, and concurrent commits share fsyncs (group
// commit). In Interval mode Commit returns once the batch is in Pebble's
// write-ahead log buffer and a goroutine writes out and fsyncs the log every
// Options.Interval: a crash (of the process or the machine) can lose the
// last interval. Batch.NoSync requests that behaviour for one batch; it
// stays ordered before every later batch.
//
// Failures: a store that cannot be read back consistently fails Open with
// an error wrapping store.ErrCorrupt; it is never reset. A write that fails
// (for example on a full disk) fails its Commit, and the store then refuses
// every later commit: what was acknowledged before stays on disk, and the
// broker restarts into a consistent store.
//
// Throughput: CommitNoWait (store.Pipeliner) lets the broker's committer
// apply the next group of batches while an earlier one waits for its
// fsync. Commits read as little as they can: a message ID above every
// stored one is not looked up, and queue entries and reference counts that
// a recent commit or ReadQueue saw are served from small write-through
// caches (cache.go), so the commits of a drain (entry sent, entry
// dequeued, message released) mostly write blindly.
//
// Memory: Pebble holds at most two 4 MiB memtables and a 16 MiB block cache
// (Options.CacheSize); the entry and reference-count caches are bounded
// (about 3 and 6 MiB). Nothing grows with the number of queued messages:
// Open rebuilds per-session counters only. The rest of the process heap is
// the broker's; set GOMEMLIMIT (for example to 80% of the container's
// memory limit) to make the Go collector return garbage from large fan-out
// commits sooner.
//
// The on-disk format (key layout, value encoding, format version) is
// documented in format.go.
package pebblestore
