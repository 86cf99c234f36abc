package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

func mustACL(t *testing.T, rules ...ACLRule) *ACL {
	t.Helper()
	a, err := NewACL(rules)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

type check struct {
	user, client, topic string
	want                bool
}

func runChecks(t *testing.T, name string, fn func(user, client, topic string) bool, checks []check) {
	t.Helper()
	for _, c := range checks {
		if got := fn(c.user, c.client, c.topic); got != c.want {
			t.Errorf("%s(%q, %q, %q) = %v, want %v", name, c.user, c.client, c.topic, got, c.want)
		}
	}
}

func TestACLNoRulesAllowsAll(t *testing.T) {
	for _, a := range []*ACL{nil, mustACL(t)} {
		if !a.CanPublish("", "c", "$SYS/x") || !a.CanSubscribe("bob", "c", "#") {
			t.Error("empty ACL refused")
		}
	}
}

func TestACLPublish(t *testing.T) {
	a := mustACL(t,
		ACLRule{User: "alice", Topic: "sensors/alice/#", Access: AccessPublish},
		ACLRule{User: "alice", Topic: "cmd/+", Access: AccessSubscribe},
		ACLRule{User: "*", Topic: "public/#", Access: AccessReadWrite},
		ACLRule{User: "*", Topic: "public/secret/#", Access: AccessDeny},
		ACLRule{User: "*", Topic: "devices/%c/state", Access: AccessPublish},
		ACLRule{User: "*", Topic: "users/%u/#", Access: AccessReadWrite},
		ACLRule{User: AnonymousUser, Topic: "anon/+", Access: AccessPublish},
		ACLRule{User: "bob", Topic: "#", Access: AccessReadWrite},
		ACLRule{User: "bob", Topic: "private/#", Access: AccessDeny},
	)
	runChecks(t, "CanPublish", a.CanPublish, []check{
		{"alice", "c1", "sensors/alice/temp", true},
		{"alice", "c1", "sensors/alice", true}, // "#" matches the parent level
		{"alice", "c1", "sensors/bob/temp", false},
		{"alice", "c1", "cmd/x", false}, // subscribe-only rule
		{"alice", "c1", "public/news", true},
		{"alice", "c1", "public/secret/x", false}, // deny wins
		{"alice", "c1", "public/secret", false},
		{"carol", "dev7", "devices/dev7/state", true},
		{"carol", "dev7", "devices/dev8/state", false},
		{"carol", "dev7", "users/carol/inbox", true},
		{"carol", "dev7", "users/alice/inbox", false},
		{"", "c", "anon/x", true},
		{"", "c", "anon/x/y", false},
		{"alice", "c", "anon/x", false}, // anonymous rules are for anonymous clients only
		{"", "c", "public/x", true},     // "*" includes anonymous
		{"", "c", "users//x", false},    // %u does not apply to anonymous
		{"bob", "c", "anything/at/all", true},
		{"bob", "c", "private/x", false},
		{"bob", "c", "$SYS/x", false}, // '#' does not match '$' topics
		{"mallory", "c", "other", false},
	})
}

func TestACLSubscribe(t *testing.T) {
	a := mustACL(t,
		ACLRule{User: "alice", Topic: "sensors/+/temp", Access: AccessSubscribe},
		ACLRule{User: "alice", Topic: "out/#", Access: AccessPublish},
		ACLRule{User: "*", Topic: "public/#", Access: AccessReadWrite},
		ACLRule{User: "*", Topic: "public/secret/#", Access: AccessDeny},
		ACLRule{User: "*", Topic: "users/%u/#", Access: AccessSubscribe},
		ACLRule{User: "*", Topic: "clients/%c", Access: AccessSubscribe},
		ACLRule{User: "*", Topic: "$SYS/broker/#", Access: AccessSubscribe},
	)
	runChecks(t, "CanSubscribe", a.CanSubscribe, []check{
		{"alice", "c", "sensors/+/temp", true},
		{"alice", "c", "sensors/kitchen/temp", true},
		{"alice", "c", "sensors/#", false},        // could match sensors/x/humidity
		{"alice", "c", "sensors/+/+", false},      // could match sensors/x/humidity
		{"alice", "c", "sensors/+/temp/#", false}, // could match sensors/x/temp/y
		{"alice", "c", "out/x", false},            // publish-only rule
		{"alice", "c", "public/news/#", true},
		{"alice", "c", "public/#", false}, // overlaps the deny rule
		{"alice", "c", "public/+", false}, // matches public/secret, which "public/secret/#" denies
		{"alice", "c", "public/news/+", true},
		{"alice", "c", "+/secret/x", false},
		{"alice", "c", "$share/g/public/news", true},
		{"alice", "c", "$share/g/public/#", false},
		{"alice", "c", "$share//public/news", false},
		{"alice", "c", "public/a#", false}, // invalid filter
		{"alice", "c", "#", false},
		{"bob", "c", "users/bob/#", true},
		{"bob", "c", "users/+/inbox", false},
		{"bob", "c", "users/alice/inbox", false},
		{"bob", "c", "clients/c", true},
		{"bob", "c", "clients/+", false},
		{"+", "c", "users/+/inbox", false}, // a wildcard username does not widen %u
		{"a/b", "c", "users/a/b", false},
		{"bob", "", "clients/", false}, // empty client ID does not apply
		{"bob", "c", "$SYS/broker/uptime", true},
		{"bob", "c", "$SYS/#", false},
	})
}

func TestACLDenyWithPlaceholders(t *testing.T) {
	a := mustACL(t,
		ACLRule{User: "*", Topic: "#", Access: AccessReadWrite},
		ACLRule{User: "*", Topic: "home/%u/private/#", Access: AccessDeny},
	)
	runChecks(t, "CanPublish", a.CanPublish, []check{
		{"alice", "c", "home/alice/private/x", false},
		{"alice", "c", "home/bob/private/x", true},
		{"+", "c", "home/bob/private/x", false}, // a deny rule only widens
	})
}

func TestACLRuleValidate(t *testing.T) {
	tests := map[string]ACLRule{
		"bad access":       {User: "a", Topic: "x", Access: "write"},
		"empty access":     {User: "a", Topic: "x"},
		"empty user":       {Topic: "x", Access: AccessPublish},
		"empty topic":      {User: "a", Access: AccessPublish},
		"hash not last":    {User: "a", Topic: "a/#/b", Access: AccessDeny},
		"plus in level":    {User: "a", Topic: "a/b+", Access: AccessDeny},
		"placeholder glue": {User: "a", Topic: "a/%u#", Access: AccessDeny},
	}
	for name, r := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := NewACL([]ACLRule{{User: "*", Topic: "ok", Access: AccessDeny}, r})
			if !errors.Is(err, ErrACL) || !strings.Contains(err.Error(), "rule 1") {
				t.Errorf("error = %v, want ErrACL naming rule 1", err)
			}
		})
	}
	if err := (ACLRule{User: "a", Topic: "a/%u-%c/#", Access: AccessReadWrite}).Validate(); err != nil {
		t.Errorf("valid rule: %v", err)
	}
}

func TestACLRuleConfigTags(t *testing.T) {
	var rules []ACLRule
	in := `[{"user":"alice","topic":"sensors/%u/#","access":"readwrite"}]`
	if err := json.Unmarshal([]byte(in), &rules); err != nil {
		t.Fatal(err)
	}
	want := []ACLRule{{User: "alice", Topic: "sensors/%u/#", Access: AccessReadWrite}}
	if !reflect.DeepEqual(rules, want) {
		t.Errorf("decoded %+v", rules)
	}
	typ := reflect.TypeFor[ACLRule]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if f.Tag.Get("yaml") != f.Tag.Get("json") || f.Tag.Get("yaml") == "" {
			t.Errorf("field %s: yaml tag %q, json tag %q", f.Name, f.Tag.Get("yaml"), f.Tag.Get("json"))
		}
	}
}

// TestHotSwap shows the reload pattern: readers load the current policy
// from an atomic.Pointer while a writer swaps in new immutable values.
func TestHotSwap(t *testing.T) {
	type policy struct {
		authn Authenticator
		acl   *ACL
	}
	var current atomic.Pointer[policy]
	users, err := NewUsers(map[string]string{"alice": hash(t, "pw")})
	if err != nil {
		t.Fatal(err)
	}
	current.Store(&policy{NewFileAuthenticator(users, false), nil})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 20 {
				p := current.Load()
				if _, err := p.authn.Authenticate(t.Context(), "c", "alice", []byte("pw"), true); err != nil {
					t.Error(err)
				}
				p.acl.CanPublish("alice", "c", "a/b")
				p.acl.CanSubscribe("alice", "c", "a/+")
			}
		})
	}
	wg.Go(func() {
		for i := range 20 {
			acl := mustACL(t, ACLRule{User: "alice", Topic: fmt.Sprintf("a/%d", i), Access: AccessReadWrite})
			current.Store(&policy{NewFileAuthenticator(users, i%2 == 0), acl})
		}
	})
	wg.Wait()
	if !current.Load().acl.CanPublish("alice", "c", "a/19") {
		t.Error("last policy not in effect")
	}
}
