package access

import (
	"strings"
	"testing"
)

func levels(s string) []string { return splitLevels(nil, s) }

func TestMatches(t *testing.T) {
	tests := map[string]bool{
		"sport/#|sport":                          true,
		"sport/#|sport/tennis/player1":           true,
		"sport/tennis/+|sport/tennis/p1":         true,
		"sport/tennis/+|sport/tennis/p1/r":       false,
		"sport/+|sport":                          false,
		"sport/+|sport/":                         true,
		"+/+|/finance":                           true,
		"+|/finance":                             false,
		"#|$SYS/x":                               false,
		"+/monitor/Clients|$SYS/monitor/Clients": false,
		"$SYS/#|$SYS/monitor/Clients":            true,
		"$SYS/monitor/+|$SYS/monitor/Clients":    true,
		"a/b|a":                                  false,
		"a|a/b":                                  false,
	}
	for c, want := range tests {
		p, name, _ := strings.Cut(c, "|")
		if got := matches(levels(p), levels(name)); got != want {
			t.Errorf("matches(%q, %q) = %v, want %v", p, name, got, want)
		}
	}
}

func TestCoversAndOverlaps(t *testing.T) {
	tests := []struct {
		p, f             string
		covers, overlaps bool
	}{
		{"#", "a/b", true, true},
		{"#", "#", true, true},
		{"#", "$SYS/#", false, false},
		{"$SYS/#", "#", false, false},
		{"+/#", "$SYS/x", false, false},
		{"a/#", "a", true, true},
		{"a/#", "a/#", true, true},
		{"a", "a/#", false, true},
		{"a/+", "a/#", false, true},
		{"a/+", "a/b", true, true},
		{"a/+", "a/+", true, true},
		{"a/b", "a/+", false, true},
		{"a/b", "a/c", false, false},
		{"a/+/c", "a/b/#", false, true},
		{"+/+", "a/b/c", false, false},
		{"+", "$SYS", false, false},
		{"+", "+", true, true},
		{"sensors/alice/#", "sensors/+/temp", false, true},
		{"sensors/+/temp", "sensors/alice/temp", true, true},
		{"a/+/#", "a/#", false, true},
		{"a/+/#", "a/b/#", true, true},
		{"+/#", "#", true, true},
		{"+/+/#", "#", false, true},
		{"a/+/#", "a/#", false, true},
	}
	for _, tc := range tests {
		if got := covers(levels(tc.p), levels(tc.f)); got != tc.covers {
			t.Errorf("covers(%q, %q) = %v, want %v", tc.p, tc.f, got, tc.covers)
		}
		for _, pair := range [][2]string{{tc.p, tc.f}, {tc.f, tc.p}} {
			if got := overlaps(levels(pair[0]), levels(pair[1])); got != tc.overlaps {
				t.Errorf("overlaps(%q, %q) = %v, want %v", pair[0], pair[1], got, tc.overlaps)
			}
		}
	}
}

// TestCoversOverlapsExhaustive checks covers and overlaps against their
// definitions over every filter of up to 3 levels from a small alphabet and
// every topic name of up to 4 levels (one literal, "z", appears in no
// filter, so '+' and a literal differ).
func TestCoversOverlapsExhaustive(t *testing.T) {
	filters := enumerate([]string{"a", "$a", "", "+", "#"}, 3)
	var valid [][]string
	for _, f := range filters {
		if validateFilter(f) == nil {
			valid = append(valid, levels(f))
		}
	}
	var names [][]string
	for _, n := range enumerate([]string{"a", "$a", "", "z"}, 4) {
		names = append(names, levels(n))
	}
	for _, p := range valid {
		for _, f := range valid {
			wantCovers, wantOverlaps := true, false
			for _, n := range names {
				mf, mp := matches(f, n), matches(p, n)
				if mf && !mp {
					wantCovers = false
				}
				if mf && mp {
					wantOverlaps = true
				}
			}
			if got := covers(p, f); got != wantCovers {
				t.Errorf("covers(%q, %q) = %v, want %v", p, f, got, wantCovers)
			}
			if got := overlaps(p, f); got != wantOverlaps {
				t.Errorf("overlaps(%q, %q) = %v, want %v", p, f, got, wantOverlaps)
			}
		}
	}
}

// enumerate returns every '/'-joined sequence of 1..n levels.
func enumerate(alphabet []string, n int) []string {
	var out, prev []string
	prev = []string{""}
	for depth := 1; depth <= n; depth++ {
		var next []string
		for _, p := range prev {
			for _, l := range alphabet {
				if depth == 1 {
					next = append(next, l)
				} else {
					next = append(next, p+"/"+l)
				}
			}
		}
		out = append(out, next...)
		prev = next
	}
	return out
}

func TestInnerFilter(t *testing.T) {
	tests := map[string]struct {
		inner string
		ok    bool
	}{
		"a/b":            {"a/b", true},
		"$share/g/a/#":   {"a/#", true},
		"$share/g":       {"", false},
		"$share//a":      {"", false},
		"$share/g/":      {"", false},
		"$share/+/a":     {"", false},
		"$sharedthing/a": {"$sharedthing/a", true},
	}
	for in, want := range tests {
		inner, ok := innerFilter(in)
		if inner != want.inner || ok != want.ok {
			t.Errorf("innerFilter(%q) = %q, %v; want %q, %v", in, inner, ok, want.inner, want.ok)
		}
	}
}

func TestFilterCovers(t *testing.T) {
	cases := []struct {
		outer, filter string
		want          bool
	}{
		{"fw/#", "fw/a/b", true},
		{"fw/#", "fw/+", true},
		{"fw/#", "#", false},
		{"fw/+", "fw/a", true},
		{"fw/+", "fw/a/b", false},
		{"fw/#", "$share/g/fw/a", true},
		{"fw/#", "$share/g/other", false},
		{"fw/#", "$share//fw/a", false}, // malformed shared subscription
		{"fw/#", "$share/g", false},
		{"#", "$SYS/x", false}, // [MQTT-4.7.2-1]
		{"$SYS/#", "$SYS/x", true},
		{"", "a", false},
	}
	for _, tc := range cases {
		if got := FilterCovers(tc.outer, tc.filter); got != tc.want {
			t.Errorf("FilterCovers(%q, %q) = %v, want %v", tc.outer, tc.filter, got, tc.want)
		}
	}
	if CheckFilter("a/#/b") == nil || CheckFilter("a/+/b") != nil {
		t.Error("CheckFilter")
	}
}
