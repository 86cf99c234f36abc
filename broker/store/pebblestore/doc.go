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
// The on-disk format (key layout, value encoding, format version) is
// documented in format.go.
package pebblestore
