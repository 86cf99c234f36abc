package access

import (
	"errors"
	"fmt"
	"strings"
)

// Kind is what an ACL rule grants or denies.
type Kind string

// Kinds of rule.
const (
	// Publish allows publishing to topics the pattern matches.
	Publish Kind = "publish"
	// Subscribe allows receiving messages on topics the pattern matches.
	Subscribe Kind = "subscribe"
	// ReadWrite allows both.
	ReadWrite Kind = "readwrite"
	// Deny forbids publishing to and receiving the matched topics. Deny
	// rules win over allow rules.
	Deny Kind = "deny"
)

// Kinds lists the valid kinds, in the order the documentation gives them.
var Kinds = []Kind{Publish, Subscribe, ReadWrite, Deny}

// User values with a special meaning in Rule.User.
const (
	// AllUsers makes a rule apply to every authenticated user (not to
	// anonymous clients).
	AllUsers = "*"
	// Anonymous makes a rule apply to anonymous clients only.
	Anonymous = ""
)

// Bounds of a rule.
const (
	// MaxUserLength is the longest username, in bytes (an MQTT string).
	MaxUserLength = 65535
	// MaxTopicLength is the longest rule topic, in bytes (an MQTT string).
	MaxTopicLength = 65535
)

// ErrRule is wrapped by every error about an invalid ACL rule.
var ErrRule = errors.New("access: invalid ACL rule")

// Rule is one topic access rule.
type Rule struct {
	// User is a username, AllUsers ("*") or Anonymous ("").
	User string
	// Topic is a topic filter; %u is replaced by the username and %c by
	// the client ID. An allow rule does not apply when the value it
	// substitutes is empty or contains '/', '+' or '#' (so a username
	// cannot widen it); a deny rule substitutes the value as it is (which
	// can only widen what it denies).
	Topic string
	// Kind is publish, subscribe, readwrite or deny.
	Kind Kind
}

// CheckUser checks the user of a rule.
func CheckUser(user string) error {
	switch {
	case len(user) > MaxUserLength:
		return fmt.Errorf("%w: user is longer than %d bytes", ErrRule, MaxUserLength)
	case strings.HasPrefix(user, "$"):
		return fmt.Errorf("%w: user %q starts with '$' (reserved; use %q for every authenticated user, %q for anonymous clients)",
			ErrRule, user, AllUsers, Anonymous)
	case strings.ContainsAny(user, "\x00\r\n"):
		return fmt.Errorf("%w: user %q contains a control character", ErrRule, user)
	}
	return nil
}

// CheckKind checks the access of a rule.
func CheckKind(k string) error {
	for _, v := range Kinds {
		if Kind(k) == v {
			return nil
		}
	}
	return fmt.Errorf("%w: access %q is not publish, subscribe, readwrite or deny", ErrRule, k)
}

// CheckTopic checks the topic of a rule for user.
func CheckTopic(user, topic string) error {
	if topic == "" {
		return fmt.Errorf("%w: empty topic", ErrRule)
	}
	if len(topic) > MaxTopicLength {
		return fmt.Errorf("%w: topic is longer than %d bytes", ErrRule, MaxTopicLength)
	}
	if user == Anonymous && strings.Contains(topic, "%u") {
		return fmt.Errorf("%w: topic %q uses %%u in a rule for anonymous clients, who have no username", ErrRule, topic)
	}
	sample := strings.NewReplacer("%u", "u", "%c", "c").Replace(topic)
	if err := validateFilter(sample); err != nil {
		return fmt.Errorf("%w: topic %q: %w", ErrRule, topic, err)
	}
	return nil
}

// Validate checks the rule; the error names each bad field (user, topic,
// access).
func (r Rule) Validate() error {
	var errs []error
	if err := CheckUser(r.User); err != nil {
		errs = append(errs, fmt.Errorf("user: %w", err))
	}
	if err := CheckTopic(r.User, r.Topic); err != nil {
		errs = append(errs, fmt.Errorf("topic: %w", err))
	}
	if err := CheckKind(string(r.Kind)); err != nil {
		errs = append(errs, fmt.Errorf("access: %w", err))
	}
	return errors.Join(errs...)
}
