package store

import (
	"context"
	"errors"
)

// Errors returned by stores; test with errors.Is.
var (
	// ErrClosed is returned by operations on a closed store.
	ErrClosed = errors.New("store: closed")
	// ErrCorrupt wraps problems with the stored data itself.
	ErrCorrupt = errors.New("store: corrupt data")
	// ErrNewerFormat is returned for a batch encoded in a format this build
	// does not know: a newer build's.
	ErrNewerFormat = errors.New("store: batch in a newer format than this build reads")
	// ErrNotFound is returned when a referenced record does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrInvalid is returned by Commit for a batch operation that breaks
	// the rules of its OpKind (see batch.go); the batch changes nothing.
	ErrInvalid = errors.New("store: invalid operation")
)

// Store persists broker state. Implementations are safe for concurrent use.
//
// Durability: Commit returns once the batch is as durable as the store's
// mode promises (for the durable store in sync mode: fsynced; concurrent
// commits share one fsync). A batch with NoSync set may return before it is
// fsynced, but is still ordered before every later batch.
type Store interface {
	// LoadSessions calls fn for every stored session, in client ID order.
	// fn must not keep the *SessionState nor its Subscriptions and
	// InboundQoS2 slices after it returns: a store may reuse them for the
	// next session (recovering a million sessions should not allocate a
	// million of them). What they hold (strings, the Will) is fn's to keep.
	LoadSessions(fn func(*SessionState) error) error
	// LoadRetained calls fn for every retained message.
	LoadRetained(fn func(*Message) error) error
	// ReadQueue calls fn with the queue entries of clientID whose Seq is
	// greater than afterSeq, in Seq order, each with its message, until fn
	// returns false or limit entries were read (limit <= 0: no limit).
	// The entry is fn's; the message is read-only: a store may share it
	// with other readers (pebblestore caches a message fanned out to many
	// sessions), as the router shares a published message between the
	// sessions it is offered to.
	ReadQueue(clientID string, afterSeq uint64, limit int, fn func(QueueEntry, *Message) bool) error
	// ReadQueueEntries is ReadQueue without the messages: fn gets each
	// entry with its message's Size. It reads and decodes no message,
	// which is what dropping the oldest entries of an offline queue needs.
	ReadQueueEntries(clientID string, afterSeq uint64, limit int, fn func(e QueueEntry, size int64) bool) error
	// NextMessageID returns a new message ID, greater than every ID issued
	// before, including before a restart.
	NextMessageID() uint64
	// Commit applies b atomically: either every operation is applied or,
	// when one is invalid (errors wrapping ErrNotFound or ErrInvalid) or
	// the write fails, none is. ctx is checked before the batch is
	// applied; once applied, Commit waits for its fsync regardless of ctx.
	Commit(ctx context.Context, b *Batch) error
	// Stats summarises the store.
	Stats() Stats
	// Close flushes and closes the store.
	Close() error
}

// Pipeliner is implemented by stores whose Commit can be split in two, so
// that a caller can apply the next batch while an earlier one waits for
// its fsync (a pipelined group committer).
type Pipeliner interface {
	// CommitNoWait validates and applies bs as one atomic batch (their
	// operations in order; NoSync only if every one is NoSync) like
	// Commit, in call order, and returns without waiting for the fsync.
	// wait blocks until the batches are as durable as Commit would have
	// made them and returns the fsync's outcome; it must be called exactly
	// once, from any goroutine. When err is non-nil nothing was applied
	// and wait is nil. Batches applied later are ordered after these; a
	// batch is acknowledged to clients only after its own wait returned
	// nil.
	CommitNoWait(ctx context.Context, bs ...*Batch) (wait func() error, err error)
}
