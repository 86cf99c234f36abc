package session

import (
	"maps"
	"sync"
	"sync/atomic"
)

// An Account sums the queues of a group of sessions (the sessions of one
// queue policy) and counts their drops, for the group's metrics and its
// byte budget. A session is in at most one account at a time, named by
// Limits.Account: SetLimits moves its queue from the old account to the
// new one, and Release takes it out for good when the session is deleted.
// Its counters change under each member session's mutex; reading them
// takes no session lock.
type Account struct {
	name   string
	msgs   atomic.Int64
	bytes  atomic.Int64
	budget atomic.Int64

	dropMu sync.Mutex // a leaf: taken under Session.mu
	drops  map[string]uint64
}

// NewAccount returns an empty account.
func NewAccount(name string) *Account {
	return &Account{name: name, drops: make(map[string]uint64)}
}

// Name returns the account's name (the policy's).
func (a *Account) Name() string { return a.name }

// SetBudget sets the most queued bytes the account's offline persistent
// sessions may hold together (0: no budget of its own). A session over it
// handles a new message as at the global store budget (see
// router.Delivery.StoreFull), counted as DropPolicyStoreFull. Queues over
// a new budget are not trimmed.
func (a *Account) SetBudget(n int64) { a.budget.Store(n) }

// Budget returns the byte budget, 0 for none.
func (a *Account) Budget() int64 { return a.budget.Load() }

// Queued returns the messages and bytes queued in the account's sessions
// (inflight ones included), as Info counts them.
func (a *Account) Queued() (msgs, bytes int64) { return a.msgs.Load(), a.bytes.Load() }

// Drops returns the messages its sessions dropped, by reason.
func (a *Account) Drops() map[string]uint64 {
	a.dropMu.Lock()
	defer a.dropMu.Unlock()
	return maps.Clone(a.drops)
}

func (a *Account) add(msgs, bytes int64) {
	if a != nil {
		a.msgs.Add(msgs)
		a.bytes.Add(bytes)
	}
}

func (a *Account) drop(reason string, n int) {
	if a != nil {
		a.dropMu.Lock()
		a.drops[reason] += uint64(n)
		a.dropMu.Unlock()
	}
}

// over reports whether size more bytes would exceed the budget.
func (a *Account) over(size int64) bool {
	if a == nil {
		return false
	}
	b := a.budget.Load()
	return b > 0 && a.bytes.Load()+size > b
}

// add changes the queue's counters and its account's together: every
// change of msgs or bytes goes through it.
func (q *queue) add(msgs, bytes int64) {
	q.msgs += msgs
	q.bytes += bytes
	q.acct.add(msgs, bytes)
}

// setAccount moves the queue's counters into a (nil: none).
func (q *queue) setAccount(a *Account) {
	if q.acct == a {
		return
	}
	q.acct.add(-q.msgs, -q.bytes)
	a.add(q.msgs, q.bytes)
	q.acct = a
}

func (a *Account) nameOrEmpty() string {
	if a == nil {
		return ""
	}
	return a.name
}
