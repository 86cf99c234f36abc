package access_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/bollard-io/bollard/broker/access"
	"github.com/bollard-io/bollard/broker/access/accesstest"
)

// TestMeanings walks the shared table of ACL meanings.
func TestMeanings(t *testing.T) {
	for _, tc := range accesstest.Cases() {
		t.Run(tc.Name, func(t *testing.T) {
			a, err := access.NewACL(tc.Rules)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range tc.Checks {
				if got := accesstest.Ask(a, c); got != c.Want {
					t.Errorf("%s(user %q, client %q, %q) = %v, want %v", c.Op, c.User, c.ClientID, c.Topic, got, c.Want)
				}
			}
		})
	}
}

func TestNilACLAllowsAll(t *testing.T) {
	var a *access.ACL
	if !a.CanPublish("", "c", "x") || !a.CanSubscribe("", "c", "#") || !a.CanRead("", "c", "x") {
		t.Error("nil ACL refused")
	}
}

func TestRuleValidate(t *testing.T) {
	tests := map[string]struct {
		r     access.Rule
		field string
	}{
		"bad access":          {access.Rule{User: "a", Topic: "x", Kind: "write"}, "access"},
		"empty access":        {access.Rule{User: "a", Topic: "x"}, "access"},
		"reserved user":       {access.Rule{User: "$anonymous", Topic: "x", Kind: access.Publish}, "user"},
		"control in user":     {access.Rule{User: "a\nb", Topic: "x", Kind: access.Publish}, "user"},
		"empty topic":         {access.Rule{User: "a", Kind: access.Publish}, "topic"},
		"hash not last":       {access.Rule{User: "a", Topic: "a/#/b", Kind: access.Deny}, "topic"},
		"plus in level":       {access.Rule{User: "a", Topic: "a/b+", Kind: access.Deny}, "topic"},
		"placeholder glue":    {access.Rule{User: "a", Topic: "a/%u#", Kind: access.Deny}, "topic"},
		"%u for anonymous":    {access.Rule{User: "", Topic: "a/%u", Kind: access.Publish}, "topic"},
		"NUL in topic":        {access.Rule{User: "a", Topic: "a/\x00", Kind: access.Publish}, "topic"},
		"topic over 64 KiB":   {access.Rule{User: "a", Topic: strings.Repeat("a", 65536), Kind: access.Publish}, "topic"},
		"user over 64 KiB":    {access.Rule{User: strings.Repeat("a", 65536), Topic: "a", Kind: access.Publish}, "user"},
		"invalid UTF-8 topic": {access.Rule{User: "a", Topic: "a/\xff", Kind: access.Publish}, "topic"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := tc.r.Validate()
			if !errors.Is(err, access.ErrRule) || !strings.HasPrefix(err.Error(), tc.field+": ") {
				t.Errorf("error = %v, want ErrRule naming %s", err, tc.field)
			}
			_, err = access.NewACL([]access.Rule{{User: "*", Topic: "ok", Kind: access.Deny}, tc.r})
			if !errors.Is(err, access.ErrRule) || !strings.Contains(err.Error(), "rule 1") {
				t.Errorf("NewACL error = %v, want ErrRule naming rule 1", err)
			}
		})
	}
	for _, r := range []access.Rule{
		{User: "a", Topic: "a/%u-%c/#", Kind: access.ReadWrite},
		{User: "", Topic: "anon/%c", Kind: access.Publish},
		{User: "*", Topic: "#", Kind: access.Deny},
	} {
		if err := r.Validate(); err != nil {
			t.Errorf("valid rule %+v: %v", r, err)
		}
	}
}

// TestCanReadFastPath: the shortcut CanRead takes when no deny rule
// applies gives the answers of full matching.
func TestCanReadFastPath(t *testing.T) {
	rules := []access.Rule{
		{User: "*", Topic: "#", Kind: access.ReadWrite},
		{User: "", Topic: "#", Kind: access.Subscribe},
		{User: "bob", Topic: "bob/private", Kind: access.Deny},
		{User: "carol", Topic: "#", Kind: access.Publish},
	}
	a, err := access.NewACL(rules)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		user, topic string
		want        bool
	}{
		{"alice", "a/b", true},
		{"alice", "$SYS/x", false}, // '#' does not match '$' topics
		{"", "a", true},
		{"bob", "bob/private", false}, // a deny rule for bob: no shortcut
		{"bob", "bob/public", true},
		{"carol", "x", true}, // "*" lets carol read; her publish rule does not matter
	}
	for _, c := range cases {
		if got := a.CanRead(c.user, "c", c.topic); got != c.want {
			t.Errorf("CanRead(%q, %q) = %v, want %v", c.user, c.topic, got, c.want)
		}
	}
}
