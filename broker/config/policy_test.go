package config

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestParsePolicies(t *testing.T) {
	c, err := Parse([]byte(`
queues:
  maxStoreBytes: 1000000
  policies:
  - name: sensors
    clientID: "sensor-*"
    maxQueuedMessages: 500
    overflowPolicy: DropOldest
  - name: actuators
    principal: "act-*"
    overflowPolicy: RejectPublish
    maxQueuedBytes: 67108864
    queueQoS0: true
    maxSessionExpiry: 1h
    storeBudgetPercent: 25
  - name: firmware
    topicFilter: "fw/#"
`))
	if err != nil {
		t.Fatal(err)
	}
	if n := len(c.Queues.Policies); n != 3 {
		t.Fatalf("%d policies", n)
	}
	s, a, fw, d := c.Effective(0), c.Effective(1), c.Effective(2), c.Effective(-1)
	def := Default()
	if s.Policy != "sensors" || s.MaxQueuedMessages != 500 || s.MaxQueuedBytes != def.Queues.MaxQueuedBytes || s.StoreBudget != 0 {
		t.Errorf("sensors: %+v", s)
	}
	if a.OverflowPolicy != OverflowRejectPublish || a.MaxQueuedBytes != 64<<20 || !a.QueueQoS0 ||
		a.MaxSessionExpiry != Duration(time.Hour) || a.StoreBudget != 250000 || a.MaxQueuedMessages != def.Queues.MaxQueuedMessages {
		t.Errorf("actuators: %+v", a)
	}
	if fw.Policy != "firmware" || fw.OverflowPolicy != def.Queues.OverflowPolicy || fw.MaxSessionExpiry != def.Sessions.MaxSessionExpiry {
		t.Errorf("firmware inherits: %+v", fw)
	}
	if d.Policy != DefaultPolicyName || d.MaxQueuedMessages != def.Queues.MaxQueuedMessages || c.Effective(3) != d {
		t.Errorf("default: %+v", d)
	}
	back, b := reparse(t, c)
	if diff := Diff(c, back); diff != nil {
		t.Errorf("round trip changed %v\n%s", diff, b)
	}
}

func TestPoliciesAreHot(t *testing.T) {
	old := Default()
	n := old.Clone()
	n.Queues.Policies = []QueuePolicy{{Name: "p", ClientID: "x*", MaxQueuedMessages: ptr[int64](3)}}
	d := Diff(old, n)
	if len(d) != 1 || d[0].Field != "queues.policies" || d[0].Class != Hot || RestartHash(old) != RestartHash(n) {
		t.Fatalf("Diff = %v", d)
	}
	m := n.Clone()
	*m.Queues.Policies[0].MaxQueuedMessages = 4
	if *n.Queues.Policies[0].MaxQueuedMessages != 3 {
		t.Fatal("Clone shares a policy's fields")
	}
	if d := Diff(n, m); len(d) != 1 || d[0].Field != "queues.policies" {
		t.Fatalf("a changed limit inside a policy: Diff = %v", d)
	}
}

// TestPolicyValidationAttacks feeds hostile policies: each error names the
// field, and an oversized list yields one error, not one per entry.
func TestPolicyValidationAttacks(t *testing.T) {
	ok := QueuePolicy{Name: "ok", ClientID: "a*"}
	cases := map[string]struct {
		mutate func(*Config)
		field  string
		msg    string
	}{
		"too many": {func(c *Config) {
			c.Queues.Policies = make([]QueuePolicy, MaxQueuePolicies+1)
		}, "queues.policies", "at most 32"},
		"giant client ID pattern": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{ok, ok, {Name: "big", ClientID: strings.Repeat("*a", 1<<20)}}
		}, "queues.policies[2].clientID", "at most 256 bytes"},
		"giant principal": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "big", Principal: strings.Repeat("u", MaxPolicyPatternLength+1)}}
		}, "queues.policies[0].principal", "at most 256"},
		"giant filter": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "big", TopicFilter: strings.Repeat("a/", 200) + "#"}}
		}, "queues.policies[0].topicFilter", "at most 256"},
		"question mark": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "dev-?"}}
		}, "queues.policies[0].clientID", "reserved"},
		"character class": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "dev-[0-9]"}}
		}, "queues.policies[0].clientID", "reserved"},
		"escape": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", Principal: `a\*`}}
		}, "queues.policies[0].principal", "reserved"},
		"control character": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a\x00b"}}
		}, "queues.policies[0].clientID", "control"},
		"not UTF-8": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a\xffb"}}
		}, "queues.policies[0].clientID", "UTF-8"},
		"bad filter": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", TopicFilter: "fw/#/x"}}
		}, "queues.policies[0].topicFilter", "'#' must fill the last level"},
		"partial plus": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", TopicFilter: "fw/a+"}}
		}, "queues.policies[0].topicFilter", "'+' must fill a whole level"},
		"shared filter": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", TopicFilter: "$share/g/fw/#"}}
		}, "queues.policies[0].topicFilter", "inner filter"},
		"no selector": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{ok, {Name: "all", MaxQueuedMessages: ptr[int64](5)}}
		}, "queues.policies[1]", "at least one of clientID, principal or topicFilter"},
		"no name": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{ClientID: "a"}}
		}, "queues.policies[0].name", "required"},
		"reserved name": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "default", ClientID: "a"}}
		}, "queues.policies[0].name", "reserved"},
		"upper-case name": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "Sensors", ClientID: "a"}}
		}, "queues.policies[0].name", "DNS label"},
		"label injection": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: `a",x="y`, ClientID: "a"}}
		}, "queues.policies[0].name", "DNS label"},
		"long name": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: strings.Repeat("a", 64), ClientID: "a"}}
		}, "queues.policies[0].name", "at most 63"},
		"giant duplicate names": {func(c *Config) {
			n := strings.Repeat("a", 1<<20)
			c.Queues.Policies = []QueuePolicy{{Name: n, ClientID: "a"}, {Name: n, ClientID: "b"}}
		}, "queues.policies[1].name", "at most 63"},
		"duplicate name": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{ok, {Name: "x", ClientID: "b"}, ok}
		}, "queues.policies[2].name", "already the name of queues.policies[0]"},
		"zero messages": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a", MaxQueuedMessages: ptr[int64](0)}}
		}, "queues.policies[0].maxQueuedMessages", "at least 1"},
		"negative bytes": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a", MaxQueuedBytes: ptr[int64](-1)}}
		}, "queues.policies[0].maxQueuedBytes", "at least 1"},
		"bad overflow": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a", OverflowPolicy: "DropAll"}}
		}, "queues.policies[0].overflowPolicy", "must be one of"},
		"negative expiry": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a", MaxSessionExpiry: ptr(Duration(-time.Second))}}
		}, "queues.policies[0].maxSessionExpiry", "between 0"},
		"fractional expiry": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a", MaxSessionExpiry: ptr(Duration(1500 * time.Millisecond))}}
		}, "queues.policies[0].maxSessionExpiry", "whole seconds"},
		"share over 100": {func(c *Config) {
			c.Queues.MaxStoreBytes = 1 << 30
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a", StoreBudgetPercent: ptr[int32](101)}}
		}, "queues.policies[0].storeBudgetPercent", "between 1 and 100"},
		"share without budget": {func(c *Config) {
			c.Queues.Policies = []QueuePolicy{{Name: "q", ClientID: "a", StoreBudgetPercent: ptr[int32](10)}}
		}, "queues.policies[0].storeBudgetPercent", "set queues.maxStoreBytes"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mutate(c)
			err := c.Validate()
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("want a *FieldError, got %v", err)
			}
			want := "config: " + tc.field + ": "
			if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q ... %q", err, want, tc.msg)
			}
			if len(err.Error()) > 2000 {
				t.Errorf("error of %d bytes echoes the input", len(err.Error()))
			}
		})
	}
}

func TestTooManyPoliciesIsOneError(t *testing.T) {
	c := Default()
	c.Queues.Policies = make([]QueuePolicy, 10000) // each invalid on its own
	err := c.Validate()
	if err == nil || strings.Count(err.Error(), "config: ") != 1 {
		t.Fatalf("want one error, got %v", err)
	}
	c.Queues.Policies = make([]QueuePolicy, MaxQueuePolicies)
	for i := range c.Queues.Policies {
		c.Queues.Policies[i] = QueuePolicy{Name: fmt.Sprintf("p%d", i), ClientID: fmt.Sprintf("c%d-*", i)}
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("%d policies refused: %v", MaxQueuePolicies, err)
	}
}

func TestMatchPattern(t *testing.T) {
	cases := []struct {
		pattern, s string
		want       bool
	}{
		{"meter", "meter", true},
		{"meter", "meter2", false},
		{"meter", "", false},
		{"", "", true},
		{"*", "", true},
		{"*", "anything", true},
		{"sensor-*", "sensor-17", true},
		{"sensor-*", "sensor-", true},
		{"sensor-*", "sensor", false},
		{"sensor-*", "xsensor-1", false},
		{"*-fw", "gw1-fw", true},
		{"*-fw", "gw1-fwx", false},
		{"a*a", "a", false},
		{"a*a", "aa", true},
		{"ab*ba", "aba", false},
		{"ab*ba", "abba", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "axxbyybzc", true},
		{"*x*", "abc", false},
		{"**", "q", true},
		{"*.*", "a.b", true},
		{"dev-?", "dev-?", true}, // literal: Validate refuses '?' before any match
	}
	for _, tc := range cases {
		if got := MatchPattern(tc.pattern, tc.s); got != tc.want {
			t.Errorf("MatchPattern(%q, %q) = %v, want %v", tc.pattern, tc.s, got, tc.want)
		}
	}
}

// TestMatchPatternDifferential compares MatchPattern with a regular
// expression over random patterns and strings of a small alphabet.
func TestMatchPatternDifferential(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	gen := func(alphabet string, n int) string {
		b := make([]byte, rng.IntN(n+1))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		return string(b)
	}
	for range 20000 {
		p, s := gen("ab*", 6), gen("ab", 8)
		parts := strings.Split(p, "*")
		for i := range parts {
			parts[i] = regexp.QuoteMeta(parts[i])
		}
		re := regexp.MustCompile("^" + strings.Join(parts, ".*") + "$")
		if got, want := MatchPattern(p, s), re.MatchString(s); got != want {
			t.Fatalf("MatchPattern(%q, %q) = %v, regexp says %v", p, s, got, want)
		}
	}
}

// TestMatchPatternIsLinear: a pattern built to make backtracking matchers
// explode answers at once against a long client ID.
func TestMatchPatternIsLinear(t *testing.T) {
	p := strings.Repeat("a*", MaxPolicyPatternLength/2-1) + "b"
	if err := CheckPattern(p); err != nil {
		t.Fatal(err)
	}
	s := strings.Repeat("a", 65535)
	start := time.Now()
	for range 10 {
		if MatchPattern(p, s) {
			t.Fatal("matched")
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("10 matches took %s", d)
	}
}

func TestPolicySelects(t *testing.T) {
	filters := func(fs ...string) func(func(string) bool) { return slices.Values(fs) }
	cases := map[string]struct {
		p            QueuePolicy
		client, user string
		subs         []string
		want         bool
	}{
		"client ID":             {QueuePolicy{ClientID: "s-*"}, "s-1", "", nil, true},
		"client ID miss":        {QueuePolicy{ClientID: "s-*"}, "t-1", "", nil, false},
		"principal":             {QueuePolicy{Principal: "act-*"}, "x", "act-1", nil, true},
		"anonymous never":       {QueuePolicy{Principal: "*"}, "x", "", nil, false},
		"any user":              {QueuePolicy{Principal: "*"}, "x", "bob", nil, true},
		"filter inside":         {QueuePolicy{TopicFilter: "fw/#"}, "x", "", []string{"a", "fw/+/img"}, true},
		"filter equal":          {QueuePolicy{TopicFilter: "fw/#"}, "x", "", []string{"fw/#"}, true},
		"filter parent level":   {QueuePolicy{TopicFilter: "fw/#"}, "x", "", []string{"fw"}, true},
		"filter wider":          {QueuePolicy{TopicFilter: "fw/+"}, "x", "", []string{"fw/#"}, false},
		"filter overlap only":   {QueuePolicy{TopicFilter: "fw/#"}, "x", "", []string{"#"}, false},
		"shared inner":          {QueuePolicy{TopicFilter: "fw/#"}, "x", "", []string{"$share/g/fw/a"}, true},
		"no subscriptions":      {QueuePolicy{TopicFilter: "fw/#"}, "x", "", nil, false},
		"$ topics not by +":     {QueuePolicy{TopicFilter: "+/x"}, "x", "", []string{"$SYS/x"}, false},
		"all selectors":         {QueuePolicy{ClientID: "s-*", Principal: "u", TopicFilter: "a/#"}, "s-1", "u", []string{"a/b"}, true},
		"all selectors one off": {QueuePolicy{ClientID: "s-*", Principal: "u", TopicFilter: "a/#"}, "s-1", "v", []string{"a/b"}, false},
		"no selector":           {QueuePolicy{}, "x", "u", []string{"a"}, false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			if got := tc.p.Selects(tc.client, tc.user, filters(tc.subs...)); got != tc.want {
				t.Errorf("Selects = %v, want %v", got, tc.want)
			}
		})
	}
	q := Queues{Policies: []QueuePolicy{{Name: "a", ClientID: "s-*"}, {Name: "b", ClientID: "*"}}}
	if q.PolicyFor("s-1", "", nil) != 0 || q.PolicyFor("t", "", nil) != 1 || (&Queues{}).PolicyFor("s", "", nil) != -1 {
		t.Error("PolicyFor is not first match")
	}
}
