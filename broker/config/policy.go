package config

import (
	"fmt"
	"iter"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bollard-io/bollard/broker/access"
)

// Bounds of queues.policies: a configuration is input like any other, and
// every session is matched against every policy when it connects,
// subscribes and at each reload.
const (
	// MaxQueuePolicies is the most policies in queues.policies.
	MaxQueuePolicies = 32
	// MaxPolicyNameLength is the longest policy name, in bytes (a DNS
	// label: the name is a metric label value).
	MaxPolicyNameLength = 63
	// MaxPolicyPatternLength is the longest clientID or principal pattern
	// and topic filter of a policy, in bytes.
	MaxPolicyPatternLength = 256
	// DefaultPolicyName names the broker-wide queue settings of
	// sessions that match no policy (in metrics and /v1/sessions); no
	// policy may take it.
	DefaultPolicyName = "default"
)

// QueuePolicy gives the sessions it selects their own queue settings (a
// device class: sensors, actuators, firmware channels). A session takes
// the first policy in queues.policies that selects it; a field the policy
// leaves unset keeps the broker-wide value of queues (or
// sessions.maxSessionExpiry). See docs/operations.md, "Queue policies".
//
// A policy selects a session when every selector it sets matches (at
// least one must be set):
//   - ClientID: a pattern of the session's client identifier;
//   - Principal: a pattern of the username that created the session
//     (sessions of anonymous clients have none, and no principal pattern
//     selects them);
//   - TopicFilter: a topic filter that covers at least one of the
//     session's subscriptions: every topic that subscription can match is
//     also matched by TopicFilter ("sensors/#" covers "sensors/+/temp" and
//     "sensors/a", not "#"). A shared subscription is taken by its inner
//     filter.
//
// A pattern is matched against the whole value; '*' matches any run of
// characters (none included) and every other character only itself:
// "sensor-*" selects "sensor-17", "*-fw" selects "gw1-fw", "meter" selects
// only "meter". The characters ? [ ] \ are reserved and refused.
type QueuePolicy struct {
	// Name identifies the policy in metrics (label policy) and in the
	// admin API (/v1/sessions): a lowercase DNS label of at most 63 bytes,
	// unique, not "default" (the sessions that match no policy).
	Name string `yaml:"name" json:"name"`
	// ClientID is a pattern the session's whole client identifier must
	// match: '*' matches any run of characters ("sensor-*"), every other
	// character only itself; ? [ ] and \ are reserved. At most 256 bytes.
	ClientID string `yaml:"clientID,omitempty" json:"clientID,omitempty"`
	// Principal is a pattern, as ClientID, of the username that created
	// the session ("act-*"; "*" is every authenticated user). Sessions of
	// anonymous clients have no principal and are never selected by it.
	Principal string `yaml:"principal,omitempty" json:"principal,omitempty"`
	// TopicFilter selects sessions with at least one subscription inside
	// it: every topic that subscription can match is matched by
	// TopicFilter too ("fw/#" selects "fw/+/img", "fw/a" and "fw/#", not
	// "#"). A shared subscription is matched by its inner filter; the
	// filter itself may not be a shared one. At most 256 bytes. A session
	// is matched again whenever its subscriptions change.
	TopicFilter string `yaml:"topicFilter,omitempty" json:"topicFilter,omitempty"`
	// MaxQueuedMessages replaces queues.maxQueuedMessages.
	MaxQueuedMessages *int64 `yaml:"maxQueuedMessages,omitempty" json:"maxQueuedMessages,omitempty"`
	// MaxQueuedBytes replaces queues.maxQueuedBytes.
	MaxQueuedBytes *int64 `yaml:"maxQueuedBytes,omitempty" json:"maxQueuedBytes,omitempty"`
	// OverflowPolicy replaces queues.overflowPolicy.
	OverflowPolicy string `yaml:"overflowPolicy,omitempty" json:"overflowPolicy,omitempty"`
	// QueueQoS0 replaces queues.queueQoS0.
	QueueQoS0 *bool `yaml:"queueQoS0,omitempty" json:"queueQoS0,omitempty"`
	// MaxSessionExpiry replaces sessions.maxSessionExpiry for the
	// sessions of this policy, when they connect (the granted expiry is
	// told in CONNACK; a 3.1.1 session's defaultSessionExpiry is capped by
	// it too). Sessions keep the expiry granted when they last connected.
	MaxSessionExpiry *Duration `yaml:"maxSessionExpiry,omitempty" json:"maxSessionExpiry,omitempty"`
	// StoreBudgetPercent is the share of queues.maxStoreBytes that the
	// sessions of this policy may use together, 1 to 100 (unset: no share
	// of their own; the global budget still applies). Their use is the sum
	// of their queued bytes, each session counting its queue as
	// maxQueuedBytes does. At the share, new messages for the policy's
	// offline sessions are handled as at the global budget (the overflow
	// policy decides: DropOldest drops the session's own oldest messages,
	// otherwise the new message is dropped or, under RejectPublish,
	// refused), counted as policy_store_full. Shares may add up to more
	// than 100: each is a cap, not a reservation.
	StoreBudgetPercent *int32 `yaml:"storeBudgetPercent,omitempty" json:"storeBudgetPercent,omitempty"`
}

// Selects reports whether p selects a session with the given client
// identifier, principal ("" for anonymous) and subscription filters.
func (p *QueuePolicy) Selects(clientID, principal string, filters iter.Seq[string]) bool {
	if p.ClientID == "" && p.Principal == "" && p.TopicFilter == "" {
		return false // Validate refuses it; never a catch-all by accident
	}
	if p.ClientID != "" && !MatchPattern(p.ClientID, clientID) {
		return false
	}
	if p.Principal != "" && (principal == "" || !MatchPattern(p.Principal, principal)) {
		return false
	}
	if p.TopicFilter == "" {
		return true
	}
	if filters != nil {
		for f := range filters {
			if access.FilterCovers(p.TopicFilter, f) {
				return true
			}
		}
	}
	return false
}

// UsesFilters reports whether any policy selects by topic filter, so that
// a change of subscriptions may change a session's policy.
func (q *Queues) UsesFilters() bool {
	for i := range q.Policies {
		if q.Policies[i].TopicFilter != "" {
			return true
		}
	}
	return false
}

// PolicyFor returns the index in q.Policies of the first policy that
// selects the session, or -1 when none does (the broker-wide values apply).
func (q *Queues) PolicyFor(clientID, principal string, filters iter.Seq[string]) int {
	for i := range q.Policies {
		if q.Policies[i].Selects(clientID, principal, filters) {
			return i
		}
	}
	return -1
}

// MatchPattern reports whether s matches pattern as a whole: '*' matches
// any run of characters (none included), every other byte itself. It
// runs in time linear in len(s) per '*'-separated part of the pattern:
// the first part must be a prefix, the last a suffix, and each part in
// between is taken at its leftmost place, which never misses a match.
func MatchPattern(pattern, s string) bool {
	first, rest, wild := strings.Cut(pattern, "*")
	if !wild {
		return pattern == s
	}
	if !strings.HasPrefix(s, first) {
		return false
	}
	s = s[len(first):]
	parts := strings.Split(rest, "*")
	last := parts[len(parts)-1]
	for _, part := range parts[:len(parts)-1] {
		i := strings.Index(s, part)
		if i < 0 {
			return false
		}
		s = s[i+len(part):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}

// CheckPattern checks a clientID or principal pattern of a policy.
func CheckPattern(p string) error {
	switch {
	case p == "":
		return nil
	case len(p) > MaxPolicyPatternLength:
		return fmt.Errorf("must be at most %d bytes, got %d", MaxPolicyPatternLength, len(p))
	case !utf8.ValidString(p):
		return fmt.Errorf("must be UTF-8")
	}
	for _, r := range p {
		switch {
		case access.IsControl(r):
			return fmt.Errorf("must not contain control characters, got %q", p)
		case strings.ContainsRune(`?[]\`, r):
			return fmt.Errorf("%q: %q is reserved: only '*' is a wildcard", p, r)
		}
	}
	return nil
}

// checkPolicyName checks a policy name: a lowercase DNS label (RFC 1123).
func checkPolicyName(n string) error {
	if n == "" {
		return fmt.Errorf("is required")
	}
	if len(n) > MaxPolicyNameLength {
		return fmt.Errorf("must be at most %d bytes, got %d", MaxPolicyNameLength, len(n))
	}
	if n == DefaultPolicyName {
		return fmt.Errorf("%q is reserved for sessions that match no policy", n)
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0 && i < len(n)-1
		if !ok {
			return fmt.Errorf("must be a lowercase DNS label (a-z, 0-9 and '-' inside), got %q", n)
		}
	}
	return nil
}

// validatePolicies checks queues.policies. Beyond MaxQueuePolicies only
// the count is reported, so that a hostile file yields one error, not one
// per entry.
func (c *Config) validatePolicies(v *validator) {
	ps := c.Queues.Policies
	if len(ps) > MaxQueuePolicies {
		v.check(false, "queues.policies", "must have at most %d policies, got %d", MaxQueuePolicies, len(ps))
		return
	}
	seen := make(map[string]int, len(ps))
	for i := range ps {
		f := fmt.Sprintf("queues.policies[%d]", i)
		p := &ps[i]
		nameErr := checkPolicyName(p.Name)
		v.err(f+".name", nameErr)
		if j, dup := seen[p.Name]; dup && nameErr == nil {
			v.check(false, f+".name", "%q is already the name of queues.policies[%d]", p.Name, j)
		}
		seen[p.Name] = i
		c.validatePolicy(v, f, p)
	}
}

func (c *Config) validatePolicy(v *validator, f string, p *QueuePolicy) {
	v.check(p.ClientID != "" || p.Principal != "" || p.TopicFilter != "", f,
		"must select sessions by at least one of clientID, principal or topicFilter")
	v.err(f+".clientID", CheckPattern(p.ClientID))
	v.err(f+".principal", CheckPattern(p.Principal))
	v.err(f+".topicFilter", checkPolicyFilter(p.TopicFilter))
	if p.MaxQueuedMessages != nil {
		v.check(*p.MaxQueuedMessages >= 1, f+".maxQueuedMessages", "must be at least 1, got %d", *p.MaxQueuedMessages)
	}
	if p.MaxQueuedBytes != nil {
		v.check(*p.MaxQueuedBytes >= 1, f+".maxQueuedBytes", "must be at least 1, got %d", *p.MaxQueuedBytes)
	}
	if p.OverflowPolicy != "" {
		v.check(validOverflow(p.OverflowPolicy), f+".overflowPolicy", "must be one of %s, got %q",
			strings.Join(overflowPolicies, ", "), p.OverflowPolicy)
	}
	if e := p.MaxSessionExpiry; e != nil {
		v.check(*e >= 0 && *e <= maxExpiry, f+".maxSessionExpiry", "must be between 0 and %s, got %s", maxExpiry, *e)
		v.check(*e%Duration(time.Second) == 0, f+".maxSessionExpiry", "must be whole seconds, got %s", *e)
	}
	if s := p.StoreBudgetPercent; s != nil {
		v.check(*s >= 1 && *s <= 100, f+".storeBudgetPercent", "must be between 1 and 100, got %d", *s)
		v.check(c.Queues.MaxStoreBytes > 0, f+".storeBudgetPercent",
			"is a share of queues.maxStoreBytes, which is 0 (no budget): set queues.maxStoreBytes")
	}
}

// checkPolicyFilter checks the topicFilter of a policy: an MQTT topic
// filter (broker/access), not a shared subscription.
func checkPolicyFilter(s string) error {
	switch {
	case s == "":
		return nil
	case len(s) > MaxPolicyPatternLength:
		return fmt.Errorf("must be at most %d bytes, got %d", MaxPolicyPatternLength, len(s))
	case strings.HasPrefix(s, "$share/"):
		return fmt.Errorf("%q: give the inner filter; a shared subscription is matched by its inner filter", s)
	}
	return access.CheckFilter(s)
}

// overflowPolicies lists the valid overflow policies.
var overflowPolicies = []string{OverflowDropOldest, OverflowDropNewest, OverflowRejectPublish}

func validOverflow(s string) bool { return slices.Contains(overflowPolicies, s) }

// Effective is a session's queue settings: the broker-wide values, with
// those its policy sets in their place.
type Effective struct {
	// Policy is the policy's name, DefaultPolicyName for none.
	Policy            string
	MaxQueuedMessages int64
	MaxQueuedBytes    int64
	OverflowPolicy    string
	QueueQoS0         bool
	MaxSessionExpiry  Duration
	// StoreBudget is the policy's share of queues.maxStoreBytes in bytes,
	// 0 for none.
	StoreBudget int64
}

// Effective returns the settings of the policy at index i of
// queues.policies; -1 (or any index out of range) gives the broker-wide
// values under DefaultPolicyName.
func (c *Config) Effective(i int) Effective {
	q := c.Queues
	e := Effective{Policy: DefaultPolicyName, MaxQueuedMessages: q.MaxQueuedMessages, MaxQueuedBytes: q.MaxQueuedBytes,
		OverflowPolicy: q.OverflowPolicy, QueueQoS0: q.QueueQoS0, MaxSessionExpiry: c.Sessions.MaxSessionExpiry}
	if i < 0 || i >= len(q.Policies) {
		return e
	}
	p := &q.Policies[i]
	e.Policy = p.Name
	if p.MaxQueuedMessages != nil {
		e.MaxQueuedMessages = *p.MaxQueuedMessages
	}
	if p.MaxQueuedBytes != nil {
		e.MaxQueuedBytes = *p.MaxQueuedBytes
	}
	if p.OverflowPolicy != "" {
		e.OverflowPolicy = p.OverflowPolicy
	}
	if p.QueueQoS0 != nil {
		e.QueueQoS0 = *p.QueueQoS0
	}
	if p.MaxSessionExpiry != nil {
		e.MaxSessionExpiry = *p.MaxSessionExpiry
	}
	if p.StoreBudgetPercent != nil && q.MaxStoreBytes > 0 {
		e.StoreBudget = q.MaxStoreBytes / 100 * int64(*p.StoreBudgetPercent)
	}
	return e
}

// clonePolicies deep-copies policies (their optional fields are pointers).
func clonePolicies(ps []QueuePolicy) []QueuePolicy {
	if ps == nil {
		return nil
	}
	out := make([]QueuePolicy, len(ps))
	for i, p := range ps {
		out[i] = p
		out[i].MaxQueuedMessages = clonePtr(p.MaxQueuedMessages)
		out[i].MaxQueuedBytes = clonePtr(p.MaxQueuedBytes)
		out[i].QueueQoS0 = clonePtr(p.QueueQoS0)
		out[i].MaxSessionExpiry = clonePtr(p.MaxSessionExpiry)
		out[i].StoreBudgetPercent = clonePtr(p.StoreBudgetPercent)
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
