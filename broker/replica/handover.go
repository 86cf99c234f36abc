package replica

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
)

// A readiness handover makes a planned leadership transfer invisible to
// clients that reconnect through a Service which follows readiness (a
// Kubernetes Service: only ready pods are its endpoints). Before the
// transfer, the operator asks the chosen successor to prepare (it answers
// ready although it does not lead yet, and holds the CONNECTs it receives
// until it leads and serves) and the leader to step back (it answers not
// ready, and keeps serving its clients). Once the Service's endpoints list
// only the successor, the transfer hands the clients over (DISCONNECT
// 0x9C) and they reconnect straight to it. Both states end by themselves
// after a bounded time, so a roll that stops half-way leaves no member
// ready that should not be, or unready that should be.

// HandoverRole is a member's part in a readiness handover.
type HandoverRole int

// Handover roles.
const (
	// HandoverNone: readiness follows leadership.
	HandoverNone HandoverRole = iota
	// HandoverSuccessor: a follower about to lead answers ready and holds
	// the connections it receives until it serves.
	HandoverSuccessor
	// HandoverPredecessor: the leader about to hand over answers not ready
	// and keeps serving its clients.
	HandoverPredecessor
)

func (r HandoverRole) String() string {
	return [...]string{adminapi.HandoverNone, adminapi.HandoverSuccessor, adminapi.HandoverPredecessor}[r]
}

// ParseHandoverRole parses "successor", "predecessor" or "none".
func ParseHandoverRole(s string) (HandoverRole, error) {
	for r := HandoverNone; r <= HandoverPredecessor; r++ {
		if r.String() == s {
			return r, nil
		}
	}
	return HandoverNone, fmt.Errorf("%w: role %q (want successor, predecessor or none)", ErrHandover, s)
}

// HandoverLimits bound a readiness handover and the connections a
// successor holds.
type HandoverLimits struct {
	// DefaultTTL is how long a handover lasts when the request names no
	// duration; MaxTTL the longest one may be asked to last.
	DefaultTTL, MaxTTL time.Duration
	// HoldFor is the longest a connection waits for this member to serve
	// before it is refused as a member that does not lead refuses it.
	HoldFor time.Duration
	// MaxHeld is how many connections may wait at once; more are refused
	// at once.
	MaxHeld int
}

// DefaultHandoverLimits are the broker's bounds: a successor holds at most
// 4096 connections for at most 5 s each (cluster.handoverMaxHeld and
// cluster.handoverHoldFor change them); a handover lasts 30 s unless
// asked otherwise, and never more than 2 minutes.
var DefaultHandoverLimits = HandoverLimits{DefaultTTL: 30 * time.Second, MaxTTL: 2 * time.Minute,
	HoldFor: config.DefaultHandoverHoldFor, MaxHeld: config.DefaultHandoverMaxHeld}

// handoverLimitsOf is what cfg sets of the handover bounds.
func handoverLimitsOf(cfg *config.Config) HandoverLimits {
	holdFor, maxHeld := cfg.Cluster.Handover()
	return HandoverLimits{HoldFor: holdFor, MaxHeld: maxHeld}
}

// ErrHandover is returned for a handover this member cannot take part in
// now (a successor that already leads, a role it does not know).
var ErrHandover = errors.New("replica: handover")

// ErrHandoverTTL is returned for a handover duration out of range.
var ErrHandoverTTL = errors.New("replica: handover duration out of range")

// HandoverStatus reports a member's handover state and what became of the
// connections it held.
type HandoverStatus struct {
	Role HandoverRole
	// Remaining is how long the role lasts (0 with HandoverNone).
	Remaining time.Duration
	// Held is how many connections wait now.
	Held int64
	// Served, TimedOut, OverLimit and Abandoned count the held
	// connections: served once the member led; refused after HoldFor;
	// refused at once because MaxHeld were waiting; refused because the
	// member will not lead (the handover ended or expired, another member
	// leads, or the member stops).
	Served, TimedOut, OverLimit, Abandoned uint64
}

// handover is an Engine's handover state; it has a lock of its own, never
// held with Engine.mu.
type handover struct {
	mu     sync.Mutex
	limits HandoverLimits
	role   HandoverRole
	until  time.Time
	wake   chan struct{} // closed and replaced when the role or the serving engine changes
	// leader is the member that led when this member was made successor
	// ("" if none was known: the first one seen since): the successor
	// role ends once another member leads (see Engine.role).
	leader string

	held                                   atomic.Int64
	served, timedOut, overLimit, abandoned atomic.Uint64
}

func (h *handover) init() {
	h.limits = DefaultHandoverLimits
	h.wake = make(chan struct{})
}

// notify wakes the held connections.
func (h *handover) notify() {
	h.mu.Lock()
	defer h.mu.Unlock()
	close(h.wake)
	h.wake = make(chan struct{})
}

// get is the current role (HandoverNone once expired), its end, and the
// channel closed at the next change.
func (h *handover) get() (HandoverRole, time.Time, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.role != HandoverNone && !time.Now().Before(h.until) {
		h.role = HandoverNone
	}
	return h.role, h.until, h.wake
}

// set gives the member role r until then; leader is the member that
// leads now. Renewing a successor role that has not ended keeps the
// leader of the first request: one that led since is not this member's
// predecessor.
func (h *handover) set(r HandoverRole, until time.Time, leader string) {
	h.mu.Lock()
	if r != HandoverSuccessor || h.role != HandoverSuccessor || !time.Now().Before(h.until) {
		h.leader = leader
	}
	h.role, h.until = r, until
	h.mu.Unlock()
	h.notify()
}

// supersede ends a successor role once st names a leader other than the
// one it was given under and other than self, which means the transfer
// went to another member (the operator chose another successor, or an
// election did): holding connections or answering ready for a leadership
// that will not come would keep clients from the leader, each for
// HoldFor, as long as the Service lists this member. It reports whether
// it ended the role.
func (h *handover) supersede(st cluster.Serving, self string) bool {
	if st.Serving || st.LeaderID == "" || st.LeaderID == self {
		return false
	}
	h.mu.Lock()
	ended := false
	switch {
	case h.role != HandoverSuccessor:
	case h.leader == "":
		h.leader = st.LeaderID
	case h.leader != st.LeaderID:
		h.role, ended = HandoverNone, true
	}
	h.mu.Unlock()
	if ended {
		h.notify()
	}
	return ended
}

// clear ends the role if it is r.
func (h *handover) clear(r HandoverRole) {
	h.mu.Lock()
	was := h.role == r
	if was {
		h.role = HandoverNone
	}
	h.mu.Unlock()
	if was {
		h.notify()
	}
}

func (h *handover) getLimits() HandoverLimits {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.limits
}

// SetHandoverLimits replaces the handover bounds; a zero field keeps the
// default.
func (e *Engine) SetHandoverLimits(l HandoverLimits) {
	d := DefaultHandoverLimits
	if l.DefaultTTL <= 0 {
		l.DefaultTTL = d.DefaultTTL
	}
	if l.MaxTTL <= 0 {
		l.MaxTTL = d.MaxTTL
	}
	if l.HoldFor <= 0 {
		l.HoldFor = d.HoldFor
	}
	if l.MaxHeld <= 0 {
		l.MaxHeld = d.MaxHeld
	}
	e.ho.mu.Lock()
	e.ho.limits = l
	e.ho.mu.Unlock()
}

// PrepareHandover gives this member role r for ttl (0: the default
// TTL), and returns how long it lasts. A successor must be a follower;
// a predecessor must be the serving leader. Asking again renews it;
// HandoverNone ends it.
func (e *Engine) PrepareHandover(r HandoverRole, ttl time.Duration) (time.Duration, error) {
	lim := e.ho.getLimits()
	if ttl == 0 {
		ttl = lim.DefaultTTL
	}
	if ttl < 0 || ttl > lim.MaxTTL {
		return 0, fmt.Errorf("%w: %s (0 for the default %s, at most %s)", ErrHandoverTTL, ttl, lim.DefaultTTL, lim.MaxTTL)
	}
	st, _ := e.node.State()
	switch r {
	case HandoverNone:
		e.EndHandover()
		return 0, nil
	case HandoverSuccessor:
		if st.Serving {
			return 0, fmt.Errorf("%w: this member already leads", ErrHandover)
		}
	case HandoverPredecessor:
		if !st.Serving {
			return 0, cluster.ErrNotLeader
		}
	}
	e.ho.set(r, time.Now().Add(ttl), st.LeaderID)
	return ttl, nil
}

// role is the handover role for the leadership state st: a successor's
// role ends once another member leads (handover.supersede).
func (e *Engine) role(st cluster.Serving) (HandoverRole, time.Time, <-chan struct{}) {
	if e.ho.supersede(st, e.self) {
		e.log.Info("the leadership went to another member: this member is no longer the successor of a handover",
			"leader", st.LeaderID)
	}
	return e.ho.get()
}

// EndHandover ends this member's handover role: readiness follows
// leadership again.
func (e *Engine) EndHandover() {
	e.ho.set(HandoverNone, time.Time{}, "")
}

// HandoverStatus reports the handover role and the held connections.
func (e *Engine) HandoverStatus() HandoverStatus {
	st, _ := e.node.State()
	r, until, _ := e.role(st)
	s := HandoverStatus{Role: r, Held: e.ho.held.Load(),
		Served: e.ho.served.Load(), TimedOut: e.ho.timedOut.Load(),
		OverLimit: e.ho.overLimit.Load(), Abandoned: e.ho.abandoned.Load()}
	if r != HandoverNone {
		s.Remaining = max(time.Until(until), 0)
	}
	return s
}

// Serving is the member as the host's Role: it serves while it leads, and
// takes connections (to hold them) while it prepares to lead.
func (e *Engine) Serving() (bool, string) {
	st, _ := e.node.State()
	if st.Serving {
		return true, st.LeaderClientAddress
	}
	if r, _, _ := e.role(st); r == HandoverSuccessor {
		return true, st.LeaderClientAddress
	}
	return false, st.LeaderClientAddress
}

// hold keeps a connection that arrived before this member serves (it
// prepares to lead, or it leads and its engine is recovering) until the
// engine serves, bounded by HoldFor and MaxHeld; else it is refused as a
// member that does not lead refuses it. The CONNECT stays unread
// meanwhile.
func (e *Engine) hold(c net.Conn) {
	lim := e.ho.getLimits()
	if n := e.ho.held.Add(1); n > int64(lim.MaxHeld) {
		e.ho.held.Add(-1)
		e.ho.overLimit.Add(1)
		e.refuse(c)
		return
	}
	deadline := time.NewTimer(lim.HoldFor)
	defer deadline.Stop()
	for {
		st, changed := e.node.State()
		role, until, wake := e.role(st)
		if srv := e.current(); srv != nil {
			e.ho.held.Add(-1)
			e.ho.served.Add(1)
			srv.ServeConn(c)
			return
		}
		if !st.Serving && role != HandoverSuccessor {
			e.giveUp(c, &e.ho.abandoned)
			return
		}
		expiry := time.NewTimer(time.Until(until))
		if st.Serving {
			expiry.Stop() // leading: only the hold's own bound applies
		}
		select {
		case <-wake:
		case <-changed:
		case <-expiry.C:
		case <-deadline.C:
			expiry.Stop()
			e.giveUp(c, &e.ho.timedOut)
			return
		case <-e.stop:
			expiry.Stop()
			e.giveUp(c, &e.ho.abandoned)
			return
		}
		expiry.Stop()
	}
}

func (e *Engine) giveUp(c net.Conn, counter *atomic.Uint64) {
	e.ho.held.Add(-1)
	counter.Add(1)
	e.refuse(c)
}

// refuse answers as a member that does not serve: CONNACK 0x9C naming the
// leader it knows (3.1.1: Server unavailable).
func (e *Engine) refuse(c net.Conn) {
	st, _ := e.node.State()
	ref := st.LeaderClientAddress
	if st.Serving {
		ref = "" // this member leads but cannot serve: it names no other
	}
	e.refuser.RefuseConn(c, ref)
}
