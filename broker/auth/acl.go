package auth

import (
	"errors"
	"fmt"
	"strings"
)

// Access is what an ACL rule grants or denies.
type Access string

// Access values.
const (
	// AccessPublish allows publishing to topics the pattern matches.
	AccessPublish Access = "publish"
	// AccessSubscribe allows subscribing to filters the pattern covers.
	AccessSubscribe Access = "subscribe"
	// AccessReadWrite allows both.
	AccessReadWrite Access = "readwrite"
	// AccessDeny forbids publishing to the matched topics and subscribing
	// to filters that could receive any of them. Deny rules win over allow
	// rules.
	AccessDeny Access = "deny"
)

// User values with a special meaning in ACLRule.User.
const (
	// AllUsers makes a rule apply to every client, anonymous ones included.
	AllUsers = "*"
	// AnonymousUser makes a rule apply to anonymous clients (principal "").
	AnonymousUser = "$anonymous"
)

// ErrACL is wrapped by every error about an invalid ACL rule.
var ErrACL = errors.New("auth: invalid ACL rule")

// ACLRule is one topic access rule, as written in the broker's
// configuration file.
type ACLRule struct {
	// User is the username the rule applies to, AllUsers ("*") or
	// AnonymousUser ("$anonymous").
	User string `json:"user" yaml:"user"`
	// Topic is a topic filter pattern. "%u" is replaced by the username and
	// "%c" by the client ID. An allow rule does not apply when the value it
	// substitutes is empty or contains '/', '+' or '#' (so a username cannot
	// widen it); a deny rule substitutes the value as it is (which can only
	// widen what it denies).
	Topic string `json:"topic" yaml:"topic"`
	// Access is publish, subscribe, readwrite or deny.
	Access Access `json:"access" yaml:"access"`
}

// Validate checks the rule.
func (r ACLRule) Validate() error {
	switch r.Access {
	case AccessPublish, AccessSubscribe, AccessReadWrite, AccessDeny:
	default:
		return fmt.Errorf("%w: access %q is not publish, subscribe, readwrite or deny", ErrACL, r.Access)
	}
	if r.User == "" {
		return fmt.Errorf("%w: empty user (use %q for everyone)", ErrACL, AllUsers)
	}
	sample := strings.NewReplacer("%u", "u", "%c", "c").Replace(r.Topic)
	if err := validateFilter(sample); err != nil {
		return fmt.Errorf("%w: topic %q: %w", ErrACL, r.Topic, err)
	}
	return nil
}

// ACL is an immutable, compiled set of ACL rules.
//
// With no rules every access is allowed. Otherwise an access is allowed when
// some rule for the user (or for everyone) allows it and no deny rule
// applies; anything else is refused. A nil *ACL allows everything.
//
// Matching follows MQTT topic matching, so a pattern starting with '+' or
// '#' does not match topics starting with '$' [MQTT-4.7.2-1].
type ACL struct {
	byUser map[string][]rule
	all    []rule
	anon   []rule
	n      int
}

type rule struct {
	access  Access
	pattern string
	levels  []string // pre-split when the pattern has no placeholder
}

// NewACL compiles rules; an invalid rule is an error naming its index.
func NewACL(rules []ACLRule) (*ACL, error) {
	a := &ACL{byUser: make(map[string][]rule), n: len(rules)}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		c := rule{access: r.Access, pattern: r.Topic}
		if !strings.Contains(r.Topic, "%u") && !strings.Contains(r.Topic, "%c") {
			c.levels = splitLevels(nil, r.Topic)
		}
		switch r.User {
		case AllUsers:
			a.all = append(a.all, c)
		case AnonymousUser:
			a.anon = append(a.anon, c)
		default:
			a.byUser[r.User] = append(a.byUser[r.User], c)
		}
	}
	return a, nil
}

// Len returns the number of rules.
func (a *ACL) Len() int {
	if a == nil {
		return 0
	}
	return a.n
}

// CanPublish reports whether the client may publish to topicName. user is
// the principal ("" for anonymous).
func (a *ACL) CanPublish(user, clientID, topicName string) bool {
	if a.Len() == 0 {
		return true
	}
	var buf [maxLevels]string
	t := splitLevels(buf[:0], topicName)
	return a.decide(user, clientID, AccessPublish, func(p []string, deny bool) bool {
		return matches(p, t)
	})
}

// CanSubscribe reports whether the client may subscribe to filter: some
// allow rule's pattern must match every topic the filter can match, and no
// deny rule may match any of them. A "$share/{group}/" prefix is ignored:
// the inner filter is checked.
func (a *ACL) CanSubscribe(user, clientID, filter string) bool {
	if a.Len() == 0 {
		return true
	}
	inner, ok := innerFilter(filter)
	if !ok || validateFilter(inner) != nil {
		return false
	}
	var buf [maxLevels]string
	f := splitLevels(buf[:0], inner)
	return a.decide(user, clientID, AccessSubscribe, func(p []string, deny bool) bool {
		if deny {
			return overlaps(p, f)
		}
		return covers(p, f)
	})
}

// decide evaluates the rules that apply to user: applies(pattern, deny)
// says whether a rule's pattern concerns the access asked for.
func (a *ACL) decide(user, clientID string, want Access, applies func(p []string, deny bool) bool) bool {
	sets := [2][]rule{a.all, a.anon}
	if user != "" {
		sets[1] = a.byUser[user]
	}
	allowed := false
	var buf [maxLevels]string
	for _, rules := range sets {
		for i := range rules {
			r := &rules[i]
			deny := r.access == AccessDeny
			if !deny && (allowed || !grants(r.access, want)) {
				continue
			}
			p, ok := r.expand(buf[:0], user, clientID)
			if !ok || !applies(p, deny) {
				continue
			}
			if deny {
				return false
			}
			allowed = true
		}
	}
	return allowed
}

func grants(have, want Access) bool {
	return have == want || have == AccessReadWrite
}

// expand returns the pattern's levels with %u and %c substituted.
func (r *rule) expand(dst []string, user, clientID string) ([]string, bool) {
	if r.levels != nil {
		return r.levels, true
	}
	if r.access != AccessDeny && (!safeValue(user, r.pattern, "%u") ||
		!safeValue(clientID, r.pattern, "%c")) {
		return nil, false
	}
	p := strings.NewReplacer("%u", user, "%c", clientID).Replace(r.pattern)
	return splitLevels(dst, p), true
}

// safeValue reports whether value may replace placeholder in pattern
// without changing the pattern's level structure.
func safeValue(value, pattern, placeholder string) bool {
	if !strings.Contains(pattern, placeholder) {
		return true
	}
	return value != "" && !strings.ContainsAny(value, "/+#\x00")
}
