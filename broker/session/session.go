package session

import (
	"errors"
	"iter"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// Errors returned by Session methods.
var (
	// ErrTooManySubscriptions: the session is at its subscription limit.
	ErrTooManySubscriptions = errors.New("session: too many subscriptions")
)

// Drop reasons passed to Hooks.Drop. The server counts drops by reason.
const (
	DropQueueFull     = "queue_full"
	DropQuotaRejected = "quota_rejected"
	DropStoreFull     = "store_full"
	// DropPolicyStoreFull: the sessions of the session's queue policy
	// reached their share of the store budget (Account.SetBudget).
	DropPolicyStoreFull = "policy_store_full"
	DropExpired         = "expired"
	DropSlowConsumer    = "slow_consumer"
	DropTooLarge        = "too_large"
	DropQoS0Offline     = "qos0_offline"
	DropSessionExpired  = "session_expired"
	// DropReadDenied: the ACL does not let the session's principal read the
	// message's topic (Hooks.CanRead), when it was offered or when it was
	// about to be delivered.
	DropReadDenied = "read_denied"
)

// Policy is what Offer does with a message for a full queue.
type Policy int

// Overflow policies; see broker/config for their contract.
const (
	DropOldest Policy = iota
	DropNewest
	RejectPublish
)

// Limits bound a session's queue.
type Limits struct {
	// MaxMessages and MaxBytes bound the queue (inflight entries included).
	MaxMessages int64
	MaxBytes    int64
	// Policy applies when a message does not fit.
	Policy Policy
	// QueueQoS0 queues QoS 0 messages while the session is offline.
	QueueQoS0 bool
	// QoS0Bytes bounds QoS 0 messages waiting for an online client (they
	// are never stored); over it they are dropped as DropSlowConsumer.
	QoS0Bytes int64
	// WindowBytes bounds the queued bytes read ahead into memory and the
	// unacknowledged bytes in flight to the client (see window.go); each
	// window admits at least one message. <= 0: no byte bound.
	WindowBytes int64
	// Account sums the queue with those of other sessions (the sessions
	// of one queue policy), counts its drops and may bound their bytes
	// together; nil: none.
	Account *Account
}

// Chooser picks the limits of a session from its client identifier,
// principal and subscription filters (a queue policy's selectors). It is
// called with the session's mutex held: it must not call the Session. The
// session keeps the pointer: the Limits must not change afterwards.
type Chooser func(clientID, principal string, filters iter.Seq[string]) *Limits

// Reader reads a persistent session's queue back from the store; a
// store.Store is one.
type Reader interface {
	ReadQueue(clientID string, afterSeq uint64, limit int, fn func(store.QueueEntry, *store.Message) bool) error
	ReadQueueEntries(clientID string, afterSeq uint64, limit int, fn func(e store.QueueEntry, size int64) bool) error
}

// Hooks are callbacks into the owner, called with the session's mutex held:
// they must be quick and must not call back into the Session.
type Hooks struct {
	// Drop is called for every message the session discards, n messages
	// at a time.
	Drop func(clientID, reason string, n int)
	// ReadError reports a failure of Reader.ReadQueue.
	ReadError func(clientID string, err error)
	// CanRead, when set, reports whether principal (the session's owner)
	// may receive a message on topic. Offer drops a message it refuses,
	// and so does NextBatch before a first delivery: the ACL may have
	// changed while the message was queued.
	CanRead func(principal, clientID, topic string) bool
}

// Env is what the sessions of one owner share, held by each session by
// pointer (a broker holds a million sessions): the store a persistent
// session reads its queue back from, the clock and the hooks. It must not
// change once a session holds it.
type Env struct {
	// Reader reads queues back; nil for sessions that are never
	// persistent.
	Reader Reader
	// Now is the clock; nil: time.Now.
	Now func() time.Time
	// Hooks are the owner's callbacks.
	Hooks Hooks
}

// noLimits and noEnv stand for a nil *Limits or *Env.
var (
	noLimits Limits
	noEnv    = Env{Now: time.Now}
)

// Session is one client session. Create it with New or Restore.
//
// An offline session is mostly at rest, and a broker holds a million of
// them: what many sessions share (the reader, clock and hooks of their
// owner, the limits of their queue policy) is held by pointer, and what an
// offline session seldom uses (the inbound QoS 2 set, the inflight map,
// the uncommitted entries, the state of a connection) is allocated on
// first use, and the record keeps its times as Unix nanoseconds. The
// struct fits the 240-byte size class (it was 352).
type Session struct {
	mu     sync.Mutex
	env    *Env    // shared by the sessions of one owner; never nil
	limits *Limits // shared by the sessions of one queue policy; never nil

	rec     record
	subs    subSet
	inbound map[uint16]struct{} // nil until the first inbound QoS 2 PUBLISH

	online   bool
	released bool // Release took the queue out of its account for good

	q queue
}

// New returns a session for rec (a new session: empty queue). The session
// keeps lim and env (nil: none, and time.Now), which must not change
// afterwards: many sessions share them.
func New(rec store.Session, lim *Limits, env *Env) *Session {
	if lim == nil {
		lim = &noLimits
	}
	switch {
	case env == nil:
		env = &noEnv
	case env.Now == nil:
		e := *env
		e.Now = time.Now
		env = &e
	}
	s := &Session{env: env, limits: lim, rec: compactRecord(rec)}
	s.q.setAccount(lim.Account)
	return s
}

// now is the session's clock.
func (s *Session) now() time.Time { return s.env.Now() }

// Restore rebuilds a session from its recovered state.
func Restore(st *store.SessionState, lim *Limits, env *Env) *Session {
	s := New(st.Session, lim, env)
	s.subs.grow(len(st.Subscriptions))
	for _, sub := range st.Subscriptions {
		s.subs.put(sub)
	}
	for _, pid := range st.InboundQoS2 {
		s.addInbound(pid)
	}
	s.q.add(st.Queue.Messages, st.Queue.Bytes)
	s.q.lastSeq = st.Queue.LastSeq
	return s
}

// ClientID returns the session's client identifier.
func (s *Session) ClientID() string { return s.rec.ClientID }

// SetLimits replaces the queue limits (configuration reload), moving the
// queue into l.Account. Queues over a new limit are not trimmed; new
// messages see the new limit. The session keeps l (nil: none).
func (s *Session) SetLimits(l *Limits) {
	s.mu.Lock()
	s.setLimits(l)
	s.mu.Unlock()
}

func (s *Session) setLimits(l *Limits) {
	if l == nil {
		l = &noLimits
	}
	s.limits = l
	if !s.released {
		s.q.setAccount(l.Account)
	}
}

// Choose sets the limits that choose picks for the session's client
// identifier, principal and current subscriptions, as one step: a
// concurrent Subscribe cannot slip between the choice and its effect.
// It returns the name of the chosen account ("" for none).
func (s *Session) Choose(choose Chooser) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setLimits(choose(s.rec.ClientID, s.rec.Principal, s.subs.filters))
	return s.limits.Account.nameOrEmpty()
}

// Release takes the queue out of its account for good: the session is
// being deleted, and whatever it still counts leaves the account's sums.
func (s *Session) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.setAccount(nil)
	s.released = true
}

// CountDrops counts n queued messages as dropped under reason, in the
// owner's counters (Hooks.Drop) and the session's account: messages the
// owner discards with the whole session (expiry).
func (s *Session) CountDrops(reason string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.drop(reason, n)
}

// Persistent reports whether the session outlives its connection (its
// expiry interval is non-zero).
func (s *Session) Persistent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persistent()
}

func (s *Session) persistent() bool { return s.rec.ExpiryInterval > 0 }

// Online reports whether a connection is attached.
func (s *Session) Online() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.online
}

// Principal returns the principal that created the session.
func (s *Session) Principal() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rec.Principal
}

// Record returns a copy of the durable session record.
func (s *Session) Record() store.Session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.record()
}

func (s *Session) record() store.Session { return s.rec.full() }

// Connect updates the record for a new connection (protocol version,
// granted expiry interval, will) and appends its PutSession to b when the
// session is persistent.
func (s *Session) Connect(version byte, expiry uint32, will *store.Will, b *store.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.ProtocolVersion = version
	s.rec.ExpiryInterval = expiry
	s.rec.Will = will
	s.rec.setDisconnectedAt(time.Time{})
	s.putRecord(b)
}

func (s *Session) putRecord(b *store.Batch) {
	if s.persistent() && b != nil {
		r := s.record()
		b.PutSession(&r)
	}
}

// SetExpiry changes the expiry interval (a 5.0 DISCONNECT may change it)
// and appends the record to b.
func (s *Session) SetExpiry(expiry uint32, b *store.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasPersistent := s.persistent()
	s.rec.ExpiryInterval = expiry
	if wasPersistent || s.persistent() {
		r := s.record()
		b.PutSession(&r)
	}
}

// Disconnected records that the connection ended at the session clock's
// now. keepWill=false drops the will (normal disconnection). It appends the
// record to b when the session is persistent.
func (s *Session) Disconnected(keepWill bool, b *store.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rec.setDisconnectedAt(s.now())
	if !keepWill {
		s.rec.Will = nil
	}
	s.putRecord(b)
}

// MarkDisconnectedAt sets the disconnection time without persisting it
// (recovery of sessions that were online when the broker stopped).
func (s *Session) MarkDisconnectedAt(t time.Time, b *store.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.rec.hasDisc {
		s.rec.setDisconnectedAt(t)
		s.putRecord(b)
	}
}

// ExpiresAt is when the disconnected session expires; zero while online.
func (s *Session) ExpiresAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.online {
		return time.Time{}
	}
	return s.rec.expiresAt()
}

// WillDueAt is when the pending will must be published: the will delay
// after disconnection, but no later than the session expiry. Zero when there
// is no will or the session is online.
func (s *Session) WillDueAt() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.online || s.rec.Will == nil || !s.rec.hasDisc {
		return time.Time{}
	}
	delay := min(s.rec.Will.DelayInterval, s.rec.ExpiryInterval)
	return s.rec.disconnectedAt().Add(time.Duration(delay) * time.Second)
}

// TakeWill removes and returns the pending will (nil if none), appending
// the record to b.
func (s *Session) TakeWill(b *store.Batch) *store.Will {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.rec.Will
	if w != nil {
		s.rec.Will = nil
		s.putRecord(b)
	}
	return w
}

// Subscribe adds or replaces a subscription; max bounds the number of
// subscriptions. It appends PutSubscription to b for persistent sessions
// and reports whether the filter was already subscribed.
func (s *Session) Subscribe(sub store.Subscription, max int, b *store.Batch) (existed bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	existed = s.subs.has(sub.Filter)
	if !existed && max > 0 && s.subs.len() >= max {
		return false, ErrTooManySubscriptions
	}
	s.subs.put(sub)
	if s.persistent() {
		c := sub
		b.PutSubscription(s.rec.ClientID, &c)
	}
	return existed, nil
}

// Subscription returns the session's subscription with filter.
func (s *Session) Subscription(filter string) (store.Subscription, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs.get(filter)
}

// UndoSubscribe undoes a Subscribe whose batch failed to commit: prev, when
// not nil, is put back, otherwise the subscription with filter is
// removed. Nothing is written: the store still holds what it held.
func (s *Session) UndoSubscribe(filter string, prev *store.Subscription) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if prev != nil {
		s.subs.put(*prev)
		return
	}
	s.subs.del(filter)
}

// Unsubscribe removes the subscription with filter and reports whether it
// existed.
func (s *Session) Unsubscribe(filter string, b *store.Batch) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.subs.del(filter) {
		return false
	}
	if s.persistent() {
		b.DeleteSubscription(s.rec.ClientID, filter)
	}
	return true
}

// Subscriptions returns the session's subscriptions.
func (s *Session) Subscriptions() []store.Subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs.appendTo(make([]store.Subscription, 0, s.subs.len()))
}

// Info is a snapshot of a session for inspection.
type Info struct {
	ClientID        string
	Principal       string
	Online          bool
	ProtocolVersion byte
	Persistent      bool
	ExpiryInterval  uint32
	ExpiresAt       time.Time
	QueuedMessages  int64
	QueuedBytes     int64
	Inflight        int
	Subscriptions   int
	// Policy names the session's account (its queue policy); "" for none.
	Policy string
}

// Info returns a snapshot of the session.
func (s *Session) Info() Info {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := Info{
		ClientID: s.rec.ClientID, Principal: s.rec.Principal, Online: s.online,
		ProtocolVersion: s.rec.ProtocolVersion, Persistent: s.persistent(),
		ExpiryInterval: s.rec.ExpiryInterval, QueuedMessages: s.q.msgs,
		QueuedBytes: s.q.bytes, Inflight: len(s.q.inflight), Subscriptions: s.subs.len(),
		Policy: s.limits.Account.nameOrEmpty(),
	}
	if !s.online {
		i.ExpiresAt = s.rec.expiresAt()
	}
	return i
}

// readable applies Hooks.CanRead to a message.
func (s *Session) readable(m *store.Message) bool {
	return s.env.Hooks.CanRead == nil || s.env.Hooks.CanRead(s.rec.Principal, s.rec.ClientID, m.Topic)
}

func (s *Session) drop(reason string, n int) {
	if n <= 0 {
		return
	}
	if s.env.Hooks.Drop != nil {
		s.env.Hooks.Drop(s.rec.ClientID, reason, n)
	}
	s.q.acct.drop(reason, n) // none once released
}
