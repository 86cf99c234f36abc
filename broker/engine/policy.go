package engine

import (
	"iter"
	"slices"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
)

// policySet is queues.policies of the applied configuration, compiled:
// one class per policy, in order, and the default class (the broker-wide
// values) for sessions that match none. It is immutable; ApplyConfig
// replaces it whole.
type policySet struct {
	queues  config.Queues // the selectors (Queues.PolicyFor)
	classes []*policyClass
	def     *policyClass
	byName  map[string]*policyClass
	// byFilter: some policy selects by topic filter, so a change of
	// subscriptions may change a session's policy.
	byFilter bool
}

// policyClass is one policy's effective settings and its account (queue
// depth, drops and store share of its sessions together).
type policyClass struct {
	eff config.Effective
	// limits are shared by the class's sessions (session.New keeps the
	// pointer): they never change, a reload makes a new class.
	limits session.Limits
}

// newPolicySet compiles the policies of cfg. An account whose policy
// keeps its name in the new configuration is kept (its counters go on);
// the others are new.
func newPolicySet(cfg *config.Config, old *policySet) *policySet {
	ps := &policySet{queues: cfg.Queues, byFilter: cfg.Queues.UsesFilters(),
		byName: make(map[string]*policyClass, len(cfg.Queues.Policies)+1)}
	class := func(i int) *policyClass {
		eff := cfg.Effective(i)
		var acct *session.Account
		if old != nil && old.byName[eff.Policy] != nil {
			acct = old.byName[eff.Policy].limits.Account
		} else {
			acct = session.NewAccount(eff.Policy)
		}
		acct.SetBudget(eff.StoreBudget)
		c := &policyClass{eff: eff, limits: sessionLimits(cfg, eff, acct)}
		ps.byName[eff.Policy] = c
		return c
	}
	for i := range cfg.Queues.Policies {
		ps.classes = append(ps.classes, class(i))
	}
	ps.def = class(-1)
	return ps
}

// sessionLimits are the session limits of a policy's effective settings.
func sessionLimits(cfg *config.Config, eff config.Effective, acct *session.Account) session.Limits {
	l := session.Limits{
		MaxMessages: eff.MaxQueuedMessages, MaxBytes: eff.MaxQueuedBytes,
		QueueQoS0: eff.QueueQoS0, QoS0Bytes: int64(cfg.Limits.OutboundBufferBytes),
		WindowBytes: int64(cfg.Limits.OutboundBufferBytes), Account: acct,
	}
	switch eff.OverflowPolicy {
	case config.OverflowDropNewest:
		l.Policy = session.DropNewest
	case config.OverflowRejectPublish:
		l.Policy = session.RejectPublish
	default:
		l.Policy = session.DropOldest
	}
	return l
}

// choose returns the class of the first policy that selects the session,
// or the default class.
func (ps *policySet) choose(clientID, principal string, filters iter.Seq[string]) *policyClass {
	if i := ps.queues.PolicyFor(clientID, principal, filters); i >= 0 {
		return ps.classes[i]
	}
	return ps.def
}

// named returns the class of the policy called name, or the default class
// (a session whose policy was just removed by a reload).
func (ps *policySet) named(name string) *policyClass {
	if c := ps.byName[name]; c != nil {
		return c
	}
	return ps.def
}

// all lists the classes in order, the default last.
func (ps *policySet) all() []*policyClass { return append(slices.Clip(ps.classes), ps.def) }

func (s *Server) policySet() *policySet { return s.pol.Load() }

// chooseLimits is the session.Chooser of the applied policies.
func (s *Server) chooseLimits(clientID, principal string, filters iter.Seq[string]) *session.Limits {
	return &s.policySet().choose(clientID, principal, filters).limits
}

// applyPolicies compiles cfg's policies and gives every session its
// policy under them. A session created meanwhile takes the new policies
// already (they are stored before the registry is read), and Choose reads
// them again under each session's mutex, so a concurrent SUBSCRIBE
// re-choosing for itself cannot leave a session on the old set.
func (s *Server) applyPolicies(cfg *config.Config) {
	s.polMu.Lock()
	defer s.polMu.Unlock()
	s.pol.Store(newPolicySet(cfg, s.pol.Load()))
	s.mu.Lock()
	list := make([]*session.Session, 0, len(s.sessions))
	for _, e := range s.sessions {
		list = append(list, e.sess)
	}
	s.mu.Unlock()
	for _, sess := range list {
		sess.Choose(s.chooseLimits)
	}
}

// rechoose gives the session the policy its subscriptions now select,
// when some policy selects by topic filter.
func (s *Server) rechoose(sess *session.Session) {
	if s.policySet().byFilter {
		sess.Choose(s.chooseLimits)
	}
}

// expiryCap is the most session expiry, in seconds, that a client
// connecting with clientID and principal may be granted: the
// maxSessionExpiry of the policy it selects. A session that resumes is
// matched with its own principal and subscriptions.
func (s *Server) expiryCap(clientID, principal string, clean bool) uint32 {
	ps := s.policySet()
	var subs []store.Subscription
	if !clean {
		s.mu.Lock()
		e := s.sessions[clientID]
		s.mu.Unlock()
		if e != nil {
			principal = e.sess.Principal()
			if ps.byFilter {
				subs = e.sess.Subscriptions()
			}
		}
	}
	return seconds(ps.choose(clientID, principal, filtersOf(subs)).eff.MaxSessionExpiry)
}

// sessionExpiryCap is the expiry cap, in seconds, of the policy sess has
// now (a 5.0 DISCONNECT may change its expiry).
func (s *Server) sessionExpiryCap(sess *session.Session) uint32 {
	return seconds(s.policySet().named(sess.Info().Policy).eff.MaxSessionExpiry)
}

func seconds(d config.Duration) uint32 { return uint32(d.D() / time.Second) }

// filtersOf yields the filters of subs.
func filtersOf(subs []store.Subscription) iter.Seq[string] {
	return func(yield func(string) bool) {
		for i := range subs {
			if !yield(subs[i].Filter) {
				return
			}
		}
	}
}

// PolicyStats describe the sessions of one queue policy together, for
// /metrics and /v1/status.
type PolicyStats struct {
	// Name is the policy's name; config.DefaultPolicyName for the
	// sessions that match no policy.
	Name string `json:"name"`
	// QueuedMessages and QueuedBytes sum the queues of its sessions.
	QueuedMessages int64 `json:"queuedMessages"`
	QueuedBytes    int64 `json:"queuedBytes"`
	// StoreBudget is its share of the store budget in bytes; 0: none.
	StoreBudget int64 `json:"storeBudgetBytes"`
	// Drops counts the messages its sessions dropped, by reason.
	Drops map[string]uint64 `json:"drops"`
}

// policyStats reports every policy of the applied configuration, in
// order, the default last: as many as there are policies, plus one.
func (s *Server) policyStats() []PolicyStats {
	var out []PolicyStats
	for _, c := range s.policySet().all() {
		a := c.limits.Account
		msgs, bytes := a.Queued()
		out = append(out, PolicyStats{Name: a.Name(), QueuedMessages: msgs, QueuedBytes: bytes,
			StoreBudget: a.Budget(), Drops: a.Drops()})
	}
	return out
}
