package access

import (
	"fmt"
	"strings"
)

// ACL is an immutable, compiled set of ACL rules.
//
// With no rules every access is allowed. Otherwise an access is allowed when
// some rule for the client allows it and no deny rule for the client
// applies; anything else is refused. The rules for a client are those for
// its username and those for AllUsers; an anonymous client has only the
// rules for Anonymous. A nil *ACL allows everything.
//
// Publishing to a topic needs a publish (or readwrite) rule matching it.
// Receiving a message needs a subscribe (or readwrite) rule matching its
// topic (CanRead); the broker checks it for every message it delivers, so
// a subscription only ever receives what its subscriber may read, even when
// the ACL changed after the message was queued. Subscribing to a filter
// (CanSubscribe) is granted when the filter could receive some readable
// topic and does not lie wholly inside a deny rule.
//
// Matching follows MQTT topic matching, so a pattern starting with '+' or
// '#' does not match topics starting with '$' [MQTT-4.7.2-1].
type ACL struct {
	byUser map[string][]rule
	all    []rule
	anon   []rule
	n      int
	// open lists the rule sets (by user; allKey for AllUsers, anonKey for
	// Anonymous) that allow reading every topic ("#") and hold no deny
	// rule, for CanRead's fast path.
	open map[string]bool
	deny map[string]bool
}

// Keys of ACL.open and ACL.deny for the sets of AllUsers and Anonymous
// (usernames cannot start with '$').
const (
	allKey  = "$all"
	anonKey = "$anonymous"
)

type rule struct {
	kind    Kind
	pattern string
	levels  []string // pre-split when the pattern has no placeholder
}

// NewACL compiles rules; an invalid rule is an error naming its index.
func NewACL(rules []Rule) (*ACL, error) {
	a := &ACL{byUser: make(map[string][]rule), n: len(rules), open: map[string]bool{}, deny: map[string]bool{}}
	for i, r := range rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("rule %d: %w", i, err)
		}
		c := rule{kind: r.Kind, pattern: r.Topic}
		if !strings.Contains(r.Topic, "%u") && !strings.Contains(r.Topic, "%c") {
			c.levels = splitLevels(nil, r.Topic)
		}
		key := r.User
		switch r.User {
		case AllUsers:
			a.all, key = append(a.all, c), allKey
		case Anonymous:
			a.anon, key = append(a.anon, c), anonKey
		default:
			a.byUser[r.User] = append(a.byUser[r.User], c)
		}
		switch {
		case r.Kind == Deny:
			a.deny[key] = true
		case r.Topic == "#" && grants(r.Kind, Subscribe):
			a.open[key] = true
		}
	}
	return a, nil
}

// readsAll reports whether user may read every topic that does not start
// with '$' without looking at the topic: some rule for it allows "#" and
// no deny rule applies to it.
func (a *ACL) readsAll(user string) bool {
	if user == Anonymous {
		return a.open[anonKey] && !a.deny[anonKey]
	}
	return (a.open[allKey] || a.open[user]) && !a.deny[allKey] && !a.deny[user]
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
	return a.canAccess(user, clientID, topicName, Publish)
}

// CanRead reports whether the client may receive a message published to
// topicName. The broker asks it for every message it queues or delivers;
// when no deny rule applies to the client and a rule lets it read "#", it
// answers without matching (a few map lookups).
func (a *ACL) CanRead(user, clientID, topicName string) bool {
	if a.Len() == 0 {
		return true
	}
	if !strings.HasPrefix(topicName, "$") && a.readsAll(user) {
		return true
	}
	return a.canAccess(user, clientID, topicName, Subscribe)
}

func (a *ACL) canAccess(user, clientID, topicName string, want Kind) bool {
	if a.Len() == 0 {
		return true
	}
	var buf [maxLevels]string
	t := splitLevels(buf[:0], topicName)
	return a.decide(user, clientID, want, func(p []string, deny bool) bool {
		return matches(p, t)
	})
}

// CanSubscribe reports whether the client may subscribe to filter: some
// allow rule's pattern must match some topic the filter can match (the
// broker filters what it delivers with CanRead), and no deny rule may
// match every topic the filter can match. A "$share/{group}/" prefix is
// ignored: the inner filter is checked.
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
	return a.decide(user, clientID, Subscribe, func(p []string, deny bool) bool {
		if deny {
			return covers(p, f)
		}
		return overlaps(p, f)
	})
}

// rulesFor returns the rule sets that apply to user.
func (a *ACL) rulesFor(user string) [2][]rule {
	if user == Anonymous {
		return [2][]rule{a.anon}
	}
	return [2][]rule{a.all, a.byUser[user]}
}

// decide evaluates the rules that apply to user: applies(pattern, deny)
// says whether a rule's pattern concerns the access asked for.
func (a *ACL) decide(user, clientID string, want Kind, applies func(p []string, deny bool) bool) bool {
	allowed := false
	var buf [maxLevels]string
	for _, rules := range a.rulesFor(user) {
		for i := range rules {
			r := &rules[i]
			deny := r.kind == Deny
			if !deny && (allowed || !grants(r.kind, want)) {
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

func grants(have, want Kind) bool {
	return have == want || have == ReadWrite
}

// expand returns the pattern's levels with %u and %c substituted.
func (r *rule) expand(dst []string, user, clientID string) ([]string, bool) {
	if r.levels != nil {
		return r.levels, true
	}
	if r.kind != Deny && (!safeValue(user, r.pattern, "%u") ||
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
