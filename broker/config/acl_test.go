package config

import (
	"errors"
	"strings"
	"testing"

	"github.com/bollard-io/bollard/broker/access"
	"github.com/bollard-io/bollard/broker/access/accesstest"
)

// TestACLFieldErrors: an ACL rule is checked by broker/access, and the
// error names the field in the file.
func TestACLFieldErrors(t *testing.T) {
	tests := map[string]struct {
		rule  ACLRule
		field string
	}{
		"reserved user":    {ACLRule{User: "$anonymous", Topic: "a", Access: "publish"}, "auth.acl[0].user"},
		"bad filter":       {ACLRule{User: "*", Topic: "a/#/b", Access: "publish"}, "auth.acl[0].topic"},
		"empty topic":      {ACLRule{User: "*", Access: "publish"}, "auth.acl[0].topic"},
		"%u for anonymous": {ACLRule{Topic: "a/%u", Access: "publish"}, "auth.acl[0].topic"},
		"bad access":       {ACLRule{User: "*", Topic: "a", Access: "write"}, "auth.acl[0].access"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c := Default()
			c.Auth.ACL = []ACLRule{tc.rule}
			err := c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Field != tc.field || !errors.Is(err, access.ErrRule) {
				t.Fatalf("error = %v, want a FieldError for %s wrapping access.ErrRule", err, tc.field)
			}
			if strings.Contains(err.Error(), "access: invalid ACL rule") {
				t.Errorf("message repeats the package prefix: %v", err)
			}
		})
	}
}

// TestAnonymousRuleParses: `user: ""` (and a rule with no user) is valid:
// it is the rule for anonymous clients.
func TestAnonymousRuleParses(t *testing.T) {
	c, err := Parse([]byte("auth:\n  acl:\n  - {user: \"\", topic: \"anon/#\", access: readwrite}\n  - {topic: x, access: deny}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := access.NewACL(c.Auth.Rules())
	if err != nil {
		t.Fatal(err)
	}
	if !a.CanPublish("", "c", "anon/1") || a.CanPublish("alice", "c", "anon/1") {
		t.Error(`"" is not the rule for anonymous clients only`)
	}
}

// TestMeaningsThroughTheFile walks the shared table of ACL meanings
// through the configuration file: rendered with Marshal, read back with
// Parse, compiled from Auth.Rules, as the broker does.
func TestMeaningsThroughTheFile(t *testing.T) {
	for _, tc := range accesstest.Cases() {
		t.Run(tc.Name, func(t *testing.T) {
			c := Default()
			for _, r := range tc.Rules {
				c.Auth.ACL = append(c.Auth.ACL, ACLRule{User: r.User, Topic: r.Topic, Access: string(r.Kind)})
			}
			got, _ := reparse(t, c)
			a, err := access.NewACL(got.Auth.Rules())
			if err != nil {
				t.Fatal(err)
			}
			for _, ck := range tc.Checks {
				if accesstest.Ask(a, ck) != ck.Want {
					t.Errorf("%s(user %q, client %q, %q) != %v after the file round trip", ck.Op, ck.User, ck.ClientID, ck.Topic, ck.Want)
				}
			}
		})
	}
}
