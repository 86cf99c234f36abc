// Package store defines how the broker persists its state: the record types
// (sessions, subscriptions, messages, queue entries, inbound QoS 2 state,
// retained messages) and the Store interface that the memory store
// (memstore) and the durable Pebble store (pebblestore) implement. The
// storetest package holds the one contract suite both must pass.
//
// Writes go through a Batch: a list of operations applied atomically by
// Commit. The session layer builds one batch per protocol event (a publish
// fanned out to every matching offline session, an acknowledgement, a
// subscription change), so that a crash never leaves half of an event on
// disk.
//
// Messages are stored once and referenced by queue entries: a payload
// published to many persistent sessions is written once. The store counts
// references and deletes a message together with the last queue entry that
// refers to it; callers never delete messages themselves.
//
// This package imports no other package of Bollard.
package store
