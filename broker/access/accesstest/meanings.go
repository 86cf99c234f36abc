// Package accesstest holds the table of what ACL rules mean, written once
// and walked by the tests of every side that handles rules: broker/access
// evaluates it directly, the operator (controllers/resources) walks it
// through its rendering of an MQTTBroker into the broker's configuration
// file, and broker/engine through real clients. It is imported by tests
// only.
package accesstest

import "github.com/bollard-io/bollard/broker/access"

// Op is the access a Check asks about.
type Op string

// Ops.
const (
	// Publish: ACL.CanPublish of a topic name.
	Publish Op = "publish"
	// Subscribe: ACL.CanSubscribe of a topic filter (SUBACK granted or
	// refused).
	Subscribe Op = "subscribe"
	// Read: ACL.CanRead of a topic name (is a message on it delivered to a
	// granted subscription).
	Read Op = "read"
)

// Check is one question and its answer.
type Check struct {
	Op             Op
	User, ClientID string
	Topic          string
	Want           bool
}

// Case is a set of rules and what they mean.
type Case struct {
	Name   string
	Rules  []access.Rule
	Checks []Check
}

// Ask evaluates a check against a.
func Ask(a *access.ACL, c Check) bool {
	switch c.Op {
	case Publish:
		return a.CanPublish(c.User, c.ClientID, c.Topic)
	case Subscribe:
		return a.CanSubscribe(c.User, c.ClientID, c.Topic)
	default:
		return a.CanRead(c.User, c.ClientID, c.Topic)
	}
}

func rule(user, topic string, k access.Kind) access.Rule {
	return access.Rule{User: user, Topic: topic, Kind: k}
}

// Cases returns the table of ACL meanings.
func Cases() []Case {
	return []Case{
		{Name: "no rules allow everything", Checks: []Check{
			{Publish, "", "c", "$SYS/x", true},
			{Subscribe, "bob", "c", "#", true},
			{Read, "", "c", "a/b", true},
		}},
		{Name: "star is every authenticated user, not anonymous clients",
			Rules: []access.Rule{rule("*", "public/#", access.ReadWrite)},
			Checks: []Check{
				{Publish, "alice", "c", "public/x", true},
				{Read, "alice", "c", "public/x", true},
				{Subscribe, "alice", "c", "public/#", true},
				{Publish, "", "c", "public/x", false},
				{Subscribe, "", "c", "public/#", false},
				{Read, "", "c", "public/x", false},
			}},
		{Name: "empty user is anonymous clients only",
			Rules: []access.Rule{rule("", "anon/#", access.ReadWrite), rule("bob", "#", access.ReadWrite)},
			Checks: []Check{
				{Publish, "", "c", "anon/x", true},
				{Subscribe, "", "c", "anon/+", true},
				{Publish, "", "c", "other", false},
				{Publish, "alice", "c", "anon/x", false},
				{Publish, "bob", "c", "anything", true},
			}},
		{Name: "readwrite # for everyone with one deny: wildcards granted, the denied topic filtered",
			Rules: []access.Rule{
				rule("*", "#", access.ReadWrite), rule("", "#", access.ReadWrite),
				rule("*", "test/nosubscribe", access.Deny), rule("", "test/nosubscribe", access.Deny),
			},
			Checks: []Check{
				{Subscribe, "alice", "c", "#", true},
				{Subscribe, "alice", "c", "+/+", true},
				{Subscribe, "alice", "c", "test/+", true},
				{Subscribe, "", "c", "#", true},
				{Subscribe, "", "c", "+/+", true},
				{Subscribe, "alice", "c", "test/nosubscribe", false},
				{Subscribe, "", "c", "test/nosubscribe", false},
				{Read, "alice", "c", "test/nosubscribe", false},
				{Read, "", "c", "test/nosubscribe", false},
				{Read, "alice", "c", "test/other", true},
				{Publish, "alice", "c", "test/nosubscribe", false},
				{Publish, "alice", "c", "test/other", true},
			}},
		{Name: "a filter wholly inside a deny rule is refused",
			Rules: []access.Rule{rule("*", "#", access.ReadWrite), rule("*", "private/#", access.Deny)},
			Checks: []Check{
				{Subscribe, "alice", "c", "private/#", false},
				{Subscribe, "alice", "c", "private/a/+", false},
				{Subscribe, "alice", "c", "private", false}, // "#" matches the parent level
				{Subscribe, "alice", "c", "+/x", true},
				{Subscribe, "alice", "c", "#", true},
				{Read, "alice", "c", "private/x", false},
				{Read, "alice", "c", "public/x", true},
			}},
		{Name: "a subscription needs some readable topic",
			Rules: []access.Rule{
				rule("alice", "sensors/+/temp", access.Subscribe),
				rule("alice", "out/#", access.Publish),
			},
			Checks: []Check{
				{Subscribe, "alice", "c", "sensors/kitchen/temp", true},
				{Subscribe, "alice", "c", "sensors/#", true}, // granted, filtered at delivery
				{Read, "alice", "c", "sensors/kitchen/temp", true},
				{Read, "alice", "c", "sensors/kitchen/humidity", false},
				{Subscribe, "alice", "c", "other/#", false},
				{Subscribe, "alice", "c", "out/x", false}, // publish-only rule
				{Read, "alice", "c", "out/x", false},
				{Publish, "alice", "c", "out/x/y", true},
				{Publish, "alice", "c", "sensors/kitchen/temp", false}, // subscribe-only rule
				{Subscribe, "alice", "c", "public/a#", false},          // invalid filter
				{Subscribe, "bob", "c", "sensors/kitchen/temp", false}, // rules of another user
			}},
		{Name: "%u is the authenticated username and cannot be widened",
			Rules: []access.Rule{rule("*", "users/%u/#", access.ReadWrite)},
			Checks: []Check{
				{Publish, "alice", "c", "users/alice/inbox", true},
				{Publish, "alice", "c", "users/bob/inbox", false},
				{Subscribe, "alice", "c", "users/alice/#", true},
				{Subscribe, "alice", "c", "users/+/inbox", true}, // granted, filtered
				{Read, "alice", "c", "users/bob/inbox", false},
				{Subscribe, "+", "c", "users/x/inbox", false}, // a wildcard username does not widen %u
				{Publish, "a/b", "c", "users/a/b/x", false},
			}},
		{Name: "%c is the client-chosen client identifier",
			Rules: []access.Rule{rule("*", "devices/%c/state", access.ReadWrite)},
			Checks: []Check{
				{Publish, "carol", "dev7", "devices/dev7/state", true},
				{Publish, "carol", "dev7", "devices/dev8/state", false},
				{Publish, "mallory", "dev8", "devices/dev8/state", true}, // anyone may pick the ID
				{Subscribe, "carol", "", "devices//state", false},        // empty client ID does not apply
				{Subscribe, "carol", "a/b", "devices/a/b/state", false},
			}},
		{Name: "deny rules with placeholders only widen",
			Rules: []access.Rule{rule("*", "#", access.ReadWrite), rule("*", "home/%u/private/#", access.Deny)},
			Checks: []Check{
				{Publish, "alice", "c", "home/alice/private/x", false},
				{Publish, "alice", "c", "home/bob/private/x", true},
				{Publish, "+", "c", "home/bob/private/x", false},
				{Subscribe, "alice", "c", "home/alice/private/#", false},
				{Subscribe, "alice", "c", "home/+/private/#", true}, // granted, filtered
				{Read, "alice", "c", "home/alice/private/x", false},
			}},
		{Name: "wildcards do not match $ topics",
			Rules: []access.Rule{rule("bob", "#", access.ReadWrite), rule("*", "$SYS/broker/#", access.Subscribe)},
			Checks: []Check{
				{Publish, "bob", "c", "$SYS/x", false},
				{Read, "bob", "c", "$SYS/x", false},
				{Subscribe, "bob", "c", "$SYS/broker/uptime", true},
				{Subscribe, "bob", "c", "$SYS/#", true}, // granted, filtered
				{Read, "bob", "c", "$SYS/broker/uptime", true},
				{Read, "bob", "c", "$SYS/other", false},
				{Subscribe, "alice", "c", "$SYS/other/#", false},
			}},
		{Name: "shared subscriptions are checked by their inner filter",
			Rules: []access.Rule{rule("*", "public/#", access.ReadWrite), rule("*", "public/secret/#", access.Deny)},
			Checks: []Check{
				{Subscribe, "alice", "c", "$share/g/public/news", true},
				{Subscribe, "alice", "c", "$share/g/public/#", true},
				{Subscribe, "alice", "c", "$share/g/public/secret/#", false},
				{Subscribe, "alice", "c", "$share//public/news", false},
				{Read, "alice", "c", "public/secret/x", false},
			}},
	}
}
