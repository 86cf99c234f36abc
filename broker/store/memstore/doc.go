// Package memstore is the in-memory implementation of store.Store, used by
// tests and by brokers running with durability "none": nothing survives a
// restart.
//
// It keeps the semantics of the durable store exactly (the storetest
// contract suite runs against both): batches are validated and applied
// atomically, messages are stored once and reference-counted by queue
// entries, and records are copied on the way in and out so callers never
// share memory with the store.
package memstore
