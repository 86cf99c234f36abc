package topic

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
)

// matchKeys returns the non-shared matches as sorted "subscriber|filter"
// keys and the shared ones as sorted "group|filter|member,member" keys.
func matchKeys[V any](m *Matches[V]) (subs, shared []string) {
	for _, s := range m.Subs {
		subs = append(subs, s.SubscriberID+"|"+s.Filter)
	}
	for _, g := range m.Shared {
		var ids []string
		for _, s := range g.Members {
			ids = append(ids, s.SubscriberID)
		}
		slices.Sort(ids)
		shared = append(shared, g.Group+"|"+g.Filter+"|"+strings.Join(ids, ","))
	}
	slices.Sort(subs)
	slices.Sort(shared)
	return subs, shared
}

func TestTrieMatch(t *testing.T) {
	filters := []string{
		"sport/tennis/player1", "sport/tennis/player1/#", "sport/#", "sport/+",
		"sport/+/player1", "+/+", "/+", "+", "#", "+/tennis/#", "$SYS/#", "$SYS/+",
		"+/monitor/Clients", "$SYS/monitor/+", "a//b", "a/+/b", "a/#",
	}
	var tr Trie[int]
	for i, f := range filters {
		if _, err := tr.Add(f, "c", i); err != nil {
			t.Fatalf("Add(%q): %v", f, err)
		}
	}
	tests := map[string][]string{
		"sport/tennis/player1": {"sport/tennis/player1", "sport/tennis/player1/#", "sport/#",
			"sport/+/player1", "#", "+/tennis/#"},
		"sport/tennis/player1/ranking": {"sport/tennis/player1/#", "sport/#", "#", "+/tennis/#"},
		"sport":                        {"sport/#", "+", "#"}, // "sport/#" matches "sport"
		"sport/":                       {"sport/#", "sport/+", "+/+", "#"},
		"/finance":                     {"/+", "+/+", "#"},
		"/":                            {"/+", "+/+", "#"},
		"$SYS/monitor/Clients":         {"$SYS/#", "$SYS/monitor/+"}, // not "+/monitor/Clients" [MQTT-4.7.2-1]
		"$SYS":                         {"$SYS/#"},
		"$SYS/x":                       {"$SYS/#", "$SYS/+"},
		"$other":                       nil,
		"a//b":                         {"a//b", "a/+/b", "a/#", "#"},
		"a/b":                          {"a/#", "+/+", "#"},
		"a":                            {"a/#", "+", "#"},
		"sport/tennis":                 {"sport/#", "sport/+", "+/+", "+/tennis/#", "#"},
		"Sport":                        {"+", "#"},
		"x/monitor/Clients":            {"+/monitor/Clients", "#"},
	}
	var m Matches[int]
	for name, want := range tests {
		t.Run(name, func(t *testing.T) {
			tr.Match(name, &m)
			got, shared := matchKeys(&m)
			var wantKeys []string
			for _, f := range want {
				wantKeys = append(wantKeys, "c|"+f)
			}
			slices.Sort(wantKeys)
			if !slices.Equal(got, wantKeys) || len(shared) != 0 {
				t.Errorf("Match(%q) = %v %v, want %v", name, got, shared, wantKeys)
			}
		})
	}
}

func TestTrieAddReplaceRemove(t *testing.T) {
	var tr Trie[string]
	mustAdd := func(f, id, v string, wantReplaced bool) {
		t.Helper()
		replaced, err := tr.Add(f, id, v)
		if err != nil || replaced != wantReplaced {
			t.Fatalf("Add(%q, %q) = %v, %v; want replaced=%v", f, id, replaced, err, wantReplaced)
		}
	}
	mustAdd("a/+", "c1", "qos0", false)
	mustAdd("a/+", "c1", "qos1", true)
	mustAdd("a/+", "c2", "qos0", false)
	mustAdd("a/#", "c1", "qos2", false)
	mustAdd("$share/g/a/+", "c3", "s", false)
	mustAdd("$share/g/a/+", "c3", "s2", true)
	mustAdd("$share/h/a/+", "c3", "s", false)
	if got := tr.Count(); got != 5 {
		t.Fatalf("Count = %d, want 5", got)
	}
	var m Matches[string]
	tr.Match("a/b", &m)
	values := map[string]string{}
	for _, s := range m.Subs {
		values[s.SubscriberID+"|"+s.Filter] = s.Value
	}
	want := map[string]string{"c1|a/+": "qos1", "c2|a/+": "qos0", "c1|a/#": "qos2"}
	if fmt.Sprint(values) != fmt.Sprint(want) {
		t.Errorf("values = %v, want %v", values, want)
	}
	if len(m.Shared) != 2 || m.Shared[0].Members[0].Value+m.Shared[1].Members[0].Value != "s2s" &&
		m.Shared[0].Members[0].Value+m.Shared[1].Members[0].Value != "ss2" {
		t.Errorf("shared = %+v", m.Shared)
	}

	removes := []struct {
		filter, id string
		want       bool
	}{
		{"a/+", "c9", false}, {"a/x", "c1", false}, {"a/+", "c1", true}, {"a/+", "c1", false},
		{"$share/g/a/+", "c1", false}, {"$share/g/a/+", "c3", true}, {"$share/x/a/+", "c3", false},
		{"$share//bad", "c3", false}, {"a/#/x", "c1", false},
	}
	for _, r := range removes {
		if got := tr.Remove(r.filter, r.id); got != r.want {
			t.Errorf("Remove(%q, %q) = %v, want %v", r.filter, r.id, got, r.want)
		}
	}
	if got := tr.RemoveAll("c1", []string{"a/#", "a/+", "nope"}); got != 1 {
		t.Errorf("RemoveAll = %d, want 1", got)
	}
	tr.RemoveAll("c2", []string{"a/+"})
	tr.RemoveAll("c3", []string{"$share/h/a/+"})
	if got := tr.Count(); got != 0 {
		t.Errorf("Count = %d, want 0", got)
	}
	if !tr.root.empty() {
		t.Errorf("root not pruned: %+v", tr.root)
	}
}

func TestTrieAddInvalid(t *testing.T) {
	var tr Trie[int]
	tests := map[string]error{
		"":             ErrEmpty,
		"a/#/b":        ErrMultiLevelWildcard,
		"a+":           ErrSingleLevelWildcard,
		"$share//a":    ErrShareName,
		"$share/g":     ErrShareNoFilter,
		"$share/g/a#":  ErrMultiLevelWildcard,
		"a/\x00":       ErrNullChar,
		"\xff/a":       ErrInvalidUTF8,
		"$share/g+/a/": ErrShareName,
	}
	for f, want := range tests {
		if _, err := tr.Add(f, "c", 1); !errors.Is(err, want) {
			t.Errorf("Add(%q) error = %v, want %v", f, err, want)
		}
	}
	if tr.Count() != 0 || !tr.root.empty() {
		t.Errorf("invalid filters were stored")
	}
}

func TestTrieShared(t *testing.T) {
	var tr Trie[int]
	for _, id := range []string{"w1", "w2", "w3"} {
		if _, err := tr.Add("$share/workers/jobs/+", id, 1); err != nil {
			t.Fatal(err)
		}
	}
	mustAdd(t, &tr, "$share/workers/jobs/#", "w1")
	mustAdd(t, &tr, "$share/other/jobs/+", "o1")
	mustAdd(t, &tr, "jobs/+", "plain")
	mustAdd(t, &tr, "$share/all/#", "x") // inner "#": no '$' topics

	var m Matches[int]
	tr.Match("jobs/1", &m)
	subs, shared := matchKeys(&m)
	wantShared := []string{"all|#|x", "other|jobs/+|o1", "workers|jobs/#|w1", "workers|jobs/+|w1,w2,w3"}
	if !slices.Equal(subs, []string{"plain|jobs/+"}) || !slices.Equal(shared, wantShared) {
		t.Fatalf("Match = %v %v, want [plain|jobs/+] %v", subs, shared, wantShared)
	}
	for _, g := range m.Shared {
		for _, s := range g.Members {
			if s.Filter != SharePrefix+g.Group+"/"+g.Filter {
				t.Errorf("member filter %q, group %q filter %q", s.Filter, g.Group, g.Filter)
			}
		}
	}
	tr.Match("$jobs/1", &m)
	if m.Len() != 0 {
		t.Errorf("'$' topic matched %v %v", m.Subs, m.Shared)
	}
}

func TestSharedPickRoundRobin(t *testing.T) {
	var tr Trie[int]
	for _, id := range []string{"w1", "w2", "w3"} {
		mustAdd(t, &tr, "$share/g/jobs", id)
	}
	var m Matches[int]
	count := map[string]int{}
	for range 9 {
		tr.Match("jobs", &m)
		s, ok := m.Shared[0].Pick(nil)
		if !ok {
			t.Fatal("Pick found nobody")
		}
		count[s.SubscriberID]++
	}
	if count["w1"] != 3 || count["w2"] != 3 || count["w3"] != 3 {
		t.Errorf("round robin distribution %v", count)
	}
	tr.Match("jobs", &m)
	for range 4 {
		s, ok := m.Shared[0].Pick(func(s Sub[int]) bool { return s.SubscriberID == "w2" })
		if !ok || s.SubscriberID != "w2" {
			t.Errorf("Pick with filter = %v, %v", s, ok)
		}
	}
	if _, ok := m.Shared[0].Pick(func(Sub[int]) bool { return false }); ok {
		t.Error("Pick accepted a rejected member")
	}
	if _, ok := (SharedMatch[int]{}).Pick(nil); ok {
		t.Error("Pick on an empty group succeeded")
	}
}

func TestSharedMembersSnapshot(t *testing.T) {
	var tr Trie[int]
	mustAdd(t, &tr, "$share/g/a", "w1")
	mustAdd(t, &tr, "$share/g/a", "w2")
	var m Matches[int]
	tr.Match("a", &m)
	snap := m.Shared[0].Members
	tr.Remove("$share/g/a", "w1")
	mustAdd(t, &tr, "$share/g/a", "w3")
	if len(snap) != 2 || snap[0].SubscriberID != "w1" || snap[1].SubscriberID != "w2" {
		t.Errorf("snapshot changed: %v", snap)
	}
}

func TestTrieConcurrent(t *testing.T) {
	var tr Trie[int]
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := range 500 {
				f := fmt.Sprintf("dev/%d/+", i%50)
				id := fmt.Sprintf("c%d", w)
				if i%3 == 0 {
					f = "$share/g/" + f
				}
				mustAdd(t, &tr, f, id)
				if i%2 == 0 {
					tr.Remove(f, id)
				}
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			var m Matches[int]
			for i := range 500 {
				tr.Match(fmt.Sprintf("dev/%d/x", i%50), &m)
				for _, g := range m.Shared {
					g.Pick(nil)
				}
				_ = tr.Count()
			}
		})
	}
	wg.Wait()
	var m Matches[int]
	total := 0
	for i := range 50 {
		tr.Match(fmt.Sprintf("dev/%d/x", i), &m)
		total += len(m.Subs)
		for _, g := range m.Shared {
			total += len(g.Members)
		}
	}
	if total != tr.Count() {
		t.Errorf("matched %d subscriptions, Count = %d", total, tr.Count())
	}
}

func mustAdd(t testing.TB, tr *Trie[int], filter, id string) {
	if _, err := tr.Add(filter, id, 0); err != nil {
		t.Errorf("Add(%q, %q): %v", filter, id, err)
	}
}

// TestTrieCompressesChains: a fleet's "fleet/{id}/cmd" filters take one
// node per device (its key "{id}/cmd"), not two; a filter that leaves a
// chain part way splits it, and every subscription still matches exactly.
func TestTrieCompressesChains(t *testing.T) {
	var tr Trie[int]
	for i := range 100 {
		if _, err := tr.Add(fmt.Sprintf("fleet/d%d/cmd", i), fmt.Sprintf("d%d", i), i); err != nil {
			t.Fatal(err)
		}
	}
	if got := countNodes(&tr.root); got != 1+1+100 {
		t.Fatalf("%d nodes for 100 devices, want 102 (root, fleet, one per device)", got)
	}
	for _, f := range []string{"fleet/d1/cmd/x", "fleet/d2/+", "fleet/d3", "fleet/d4/cmd", "fleet/d5/cmd/#"} {
		if _, err := tr.Add(f, "other", -1); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string][]string{
		"fleet/d1/cmd":   {"d1"},
		"fleet/d1/cmd/x": {"other"},
		"fleet/d2/cmd":   {"d2", "other"},
		"fleet/d2/x":     {"other"},
		"fleet/d3":       {"other"},
		"fleet/d3/cmd":   {"d3"},
		"fleet/d4/cmd":   {"d4", "other"},
		"fleet/d5/cmd":   {"d5", "other"},
		"fleet/d5/cmd/y": {"other"},
		"fleet/d6":       nil,
		"fleet/d6/cm":    nil,
		"fleet/d6/cmdx":  nil,
		"fleet/d60/cmd":  {"d60"},
	}
	for name, want := range tests {
		var m Matches[int]
		tr.Match(name, &m)
		var got []string
		for _, s := range m.Subs {
			got = append(got, s.SubscriberID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("Match(%q) = %v, want %v", name, got, want)
		}
	}
	if tr.Remove("fleet/d1/cm", "d1") || tr.Remove("fleet/d1", "d1") || !tr.Remove("fleet/d1/cmd", "d1") {
		t.Fatal("Remove of a chain's prefix or of the chain itself went wrong")
	}
}

func countNodes(n *node[int]) int {
	c := 1
	for _, k := range n.kids {
		c += countNodes(k)
	}
	if n.x != nil {
		for _, k := range n.x.kids {
			c += countNodes(k)
		}
		for _, k := range []*node[int]{n.x.plus, n.x.hash} {
			if k != nil {
				c += countNodes(k)
			}
		}
	}
	return c
}
