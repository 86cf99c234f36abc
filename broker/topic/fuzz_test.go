package topic

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// refMatch is the naive reference matcher: MQTT 3.1.1 section 4.7 read
// literally, level by level.
func refMatch(filter, name string) bool {
	if name == "" {
		return false
	}
	f := strings.Split(filter, "/")
	n := strings.Split(name, "/")
	if name[0] == '$' && (f[0] == "+" || f[0] == "#") { // [MQTT-4.7.2-1]
		return false
	}
	for i, level := range f {
		if level == "#" {
			return true // also matches the parent level
		}
		if i >= len(n) || (level != "+" && level != n[i]) {
			return false
		}
	}
	return len(f) == len(n)
}

// checkTrieMatch adds filters (one per line of spec; subscriber IDs cycle
// through a few clients so that they overlap), removes some, and compares
// Match(name) with refMatch.
func checkTrieMatch(t *testing.T, spec, name string) {
	t.Helper()
	if ValidateName(name) != nil {
		return
	}
	lines := strings.Split(spec, "\n")
	if len(lines) > 64 {
		lines = lines[:64]
	}
	type key struct{ id, filter string }
	want := map[key]int{} // value = last value added
	inners := map[string]string{}
	var tr Trie[int]
	for i, f := range lines {
		id := fmt.Sprintf("c%d", i%5)
		_, err := tr.Add(f, id, i)
		_, inner, shared, perr := ParseShared(f)
		if perr == nil && !shared {
			perr = ValidateFilter(f)
		}
		if (err == nil) != (perr == nil) {
			t.Fatalf("Add(%q) error %v, validation error %v", f, err, perr)
		}
		if err != nil {
			continue
		}
		if i%4 == 3 { // remove some again
			if !tr.Remove(f, id) {
				t.Fatalf("Remove(%q, %q) = false after Add", f, id)
			}
			delete(want, key{id, f})
			continue
		}
		want[key{id, f}] = i
		inners[f] = inner
	}
	if tr.Count() != len(want) {
		t.Fatalf("Count = %d, want %d", tr.Count(), len(want))
	}
	for k := range want {
		if !refMatch(inners[k.filter], name) {
			delete(want, k)
		}
	}
	var m Matches[int]
	tr.Match(name, &m)
	got := map[key]int{}
	for _, s := range m.Subs {
		if _, dup := got[key{s.SubscriberID, s.Filter}]; dup {
			t.Fatalf("duplicate match %v", s)
		}
		got[key{s.SubscriberID, s.Filter}] = s.Value
	}
	for _, g := range m.Shared {
		for _, s := range g.Members {
			if s.Filter != SharePrefix+g.Group+"/"+g.Filter {
				t.Fatalf("member %v in group %q %q", s, g.Group, g.Filter)
			}
			got[key{s.SubscriberID, s.Filter}] = s.Value
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Match(%q) with filters %q:\n got %v\nwant %v", name, lines, got, want)
	}
}

// checkRetainedMatch stores the names (one per line of spec), deletes some,
// and compares Match(filter) with refMatch.
func checkRetainedMatch(t *testing.T, spec, filter string) {
	t.Helper()
	if ValidateFilter(filter) != nil {
		return
	}
	var r Retained[int]
	want := map[string]int{}
	for i, name := range strings.Split(spec, "\n") {
		if ValidateName(name) != nil {
			continue
		}
		r.Set(name, i)
		if i%4 == 3 {
			if !r.Delete(name) {
				t.Fatalf("Delete(%q) = false after Set", name)
			}
			delete(want, name)
			continue
		}
		want[name] = i
	}
	if r.Len() != len(want) {
		t.Fatalf("Len = %d, want %d", r.Len(), len(want))
	}
	for name := range want {
		if !refMatch(filter, name) {
			delete(want, name)
		}
	}
	got := map[string]int{}
	r.Match(filter, func(name string, v int) bool {
		if _, dup := got[name]; dup {
			t.Fatalf("duplicate %q", name)
		}
		got[name] = v
		return true
	})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("Match(%q) with names %q:\n got %v\nwant %v", filter, spec, got, want)
	}
}

var fuzzSeeds = [][2]string{
	{"sport/#\nsport/+\n#\n+/+\n$SYS/#\n+", "sport"},
	{"sport/tennis/player1/#\nsport/+/player1\n+/tennis/#", "sport/tennis/player1"},
	{"$share/g/a/+\n$share/g/a/+\n$share/h/#\na/#\n+/b", "a/b"},
	{"#\n+\n+/#\n$SYS/+\n$SYS/#", "$SYS/x"},
	{"/+\n+/+\n/#\n//\n+//+", "//"},
	{"a/#/b\n+a\n$share//x\n$share/g\na", "a"},
}

func FuzzTrieMatch(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add(s[0], s[1])
	}
	f.Fuzz(checkTrieMatch)
}

func FuzzRetainedMatch(f *testing.F) {
	f.Add("sport\nsport/tennis\n$SYS/x\nsport/\n/x", "sport/#")
	f.Add("a/b\n$a/b\na/b/c\na", "+/b")
	f.Add("a\n$x\n/\n//", "#")
	f.Fuzz(checkRetainedMatch)
}

// randomLevels builds a string of 1-4 levels from a small alphabet so that
// random filters and names often match.
func randomLevels(rng *rand.Rand, alphabet []string) string {
	n := 1 + rng.IntN(4)
	levels := make([]string, n)
	for i := range levels {
		levels[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return strings.Join(levels, "/")
}

func randomFilter(rng *rand.Rand) string {
	f := randomLevels(rng, []string{"a", "b", "$s", "", "+", "+", "#"})
	if rng.IntN(5) == 0 {
		f = SharePrefix + []string{"g", "h"}[rng.IntN(2)] + "/" + f
	}
	return f
}

func TestTrieMatchRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	names := []string{"a", "b", "$s", ""}
	for range 3000 {
		var filters []string
		for range 1 + rng.IntN(20) {
			filters = append(filters, randomFilter(rng))
		}
		checkTrieMatch(t, strings.Join(filters, "\n"), randomLevels(rng, names))
	}
}

func TestRetainedMatchRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	names := []string{"a", "b", "$s", ""}
	for range 3000 {
		var topics []string
		for range 1 + rng.IntN(20) {
			topics = append(topics, randomLevels(rng, names))
		}
		filter := randomLevels(rng, []string{"a", "b", "$s", "", "+", "+", "#"})
		checkRetainedMatch(t, strings.Join(topics, "\n"), filter)
	}
}

func TestRefMatch(t *testing.T) {
	// Sanity of the reference itself, against examples of the spec.
	yes := [][2]string{{"sport/#", "sport"}, {"#", "a/b"}, {"+/+", "/finance"}, {"/+", "/finance"},
		{"sport/+", "sport/"}, {"$SYS/#", "$SYS"}, {"a/+/c", "a//c"}}
	no := [][2]string{{"sport/+", "sport"}, {"+", "/finance"}, {"#", "$SYS/x"}, {"+/x", "$a/x"},
		{"a", "a/b"}, {"a/b", "a"}}
	for _, c := range yes {
		if !refMatch(c[0], c[1]) {
			t.Errorf("refMatch(%q, %q) = false", c[0], c[1])
		}
	}
	for _, c := range no {
		if refMatch(c[0], c[1]) {
			t.Errorf("refMatch(%q, %q) = true", c[0], c[1])
		}
	}
}

func TestRetained(t *testing.T) {
	var r Retained[string]
	if r.Set("a/b", "1") || !r.Set("a/b", "2") {
		t.Fatal("Set replaced flags wrong")
	}
	r.Set("a", "0")
	r.Set("a/b/c", "3")
	r.Set("$SYS/up", "s")
	if v, ok := r.Get("a/b"); !ok || v != "2" {
		t.Errorf("Get = %q, %v", v, ok)
	}
	if _, ok := r.Get("a/x"); ok {
		t.Error("Get of a missing topic succeeded")
	}
	var got []string
	r.Match("a/#", func(name, _ string) bool { got = append(got, name); return true })
	slices.Sort(got)
	if !slices.Equal(got, []string{"a", "a/b", "a/b/c"}) {
		t.Errorf("Match(a/#) = %v", got)
	}
	calls := 0
	r.Match("#", func(string, string) bool { calls++; return false })
	if calls != 1 {
		t.Errorf("Match did not stop: %d calls", calls)
	}
	if r.Delete("a/b/x") || !r.Delete("a/b/c") || r.Delete("a/b/c") {
		t.Error("Delete flags wrong")
	}
	r.Delete("a/b")
	r.Delete("a")
	r.Delete("$SYS/up")
	if r.Len() != 0 || len(r.root.children) != 0 {
		t.Errorf("not pruned: Len %d, children %v", r.Len(), r.root.children)
	}
	r.Match("", func(string, string) bool { t.Error("empty filter matched"); return true })
}

// TestTrieCompactLimits adds and removes subscriptions at random with many
// subscribers per filter and many sibling levels, so that nodes cross
// fewKids and fewSubs in both directions (the map forms of children and
// subscribers), and compares every Match with refMatch. Removing
// everything must leave an empty root.
func TestTrieCompactLimits(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	levels := []string{"+", "#"}
	for i := range 2 * fewKids {
		levels = append(levels, fmt.Sprintf("l%d", i))
	}
	var tr Trie[int]
	want := map[[2]string]int{} // (subscriber, filter) -> value
	for op := range 20000 {
		f := randomLevels(rng, levels[:2+rng.IntN(len(levels)-1)])
		if ValidateFilter(f) != nil {
			continue
		}
		id := fmt.Sprintf("c%d", rng.IntN(3*fewSubs))
		if rng.IntN(3) == 0 {
			_, existed := want[[2]string{id, f}]
			if got := tr.Remove(f, id); got != existed {
				t.Fatalf("op %d: Remove(%q, %q) = %v, want %v", op, f, id, got, existed)
			}
			delete(want, [2]string{id, f})
		} else {
			if _, err := tr.Add(f, id, op); err != nil {
				t.Fatal(err)
			}
			want[[2]string{id, f}] = op
		}
		if op%50 == 0 {
			checkCompactMatch(t, &tr, want, randomLevels(rng, levels[2:]))
		}
	}
	for k := range want {
		if !tr.Remove(k[1], k[0]) {
			t.Fatalf("Remove(%q, %q) = false", k[1], k[0])
		}
	}
	if tr.Count() != 0 || !tr.root.empty() || tr.root.x != nil {
		t.Errorf("not pruned: Count %d, root %+v", tr.Count(), tr.root)
	}
}

func checkCompactMatch(t *testing.T, tr *Trie[int], want map[[2]string]int, name string) {
	t.Helper()
	if tr.Count() != len(want) {
		t.Fatalf("Count = %d, want %d", tr.Count(), len(want))
	}
	exp := map[string]int{}
	for k, v := range want {
		if refMatch(k[1], name) {
			exp[k[0]+"|"+k[1]] = v
		}
	}
	var m Matches[int]
	tr.Match(name, &m)
	got := map[string]int{}
	for _, s := range m.Subs {
		got[s.SubscriberID+"|"+s.Filter] = s.Value
	}
	if fmt.Sprint(got) != fmt.Sprint(exp) {
		t.Fatalf("Match(%q):\n got %v\nwant %v", name, got, exp)
	}
}

// TestTrieChainsRandom is TestTrieCompactLimits for compressed chains:
// long filters from an alphabet whose levels prefix one another ("b",
// "bc") and empty levels, added and removed at random, so that chains are
// made, split part way and pruned, with every Match compared against
// refMatch and the trie's shape checked after each operation.
func TestTrieChainsRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	alphabet := []string{"a", "b", "bc", "", "a", "b", "+", "#"}
	deep := func(alpha []string) string {
		levels := make([]string, 1+rng.IntN(7))
		for i := range levels {
			levels[i] = alpha[rng.IntN(len(alpha))]
		}
		return strings.Join(levels, "/")
	}
	for round := range 300 {
		var tr Trie[int]
		want := map[[2]string]int{}
		var added [][2]string
		for op := range 60 {
			if len(added) > 0 && rng.IntN(3) == 0 {
				k := added[rng.IntN(len(added))]
				_, existed := want[k]
				if got := tr.Remove(k[1], k[0]); got != existed {
					t.Fatalf("round %d op %d: Remove(%q, %q) = %v, want %v", round, op, k[1], k[0], got, existed)
				}
				delete(want, k)
			} else {
				f := deep(alphabet)
				if ValidateFilter(f) != nil {
					continue
				}
				k := [2]string{fmt.Sprintf("c%d", rng.IntN(4)), f}
				if _, err := tr.Add(f, k[0], op); err != nil {
					t.Fatal(err)
				}
				want[k] = op
				added = append(added, k)
			}
			checkShape(t, &tr.root)
			checkCompactMatch(t, &tr, want, deep(alphabet[:6]))
		}
	}
}

// checkShape checks the invariants of a compressed trie below n: every
// child's parent is n and its first level is the key it is found under;
// a key of several levels holds no wildcard level.
func checkShape(t *testing.T, n *node[int]) {
	t.Helper()
	kids := n.kids
	if n.x != nil {
		for first, c := range n.x.kids {
			if levelOf(c.level) != first {
				t.Fatalf("child %q under key %q", c.level, first)
			}
			kids = append(kids, c)
		}
		for _, c := range []*node[int]{n.x.plus, n.x.hash} {
			if c != nil {
				kids = append(kids, c)
			}
		}
	}
	for _, c := range kids {
		if c.parent != n {
			t.Fatalf("child %q of %q has another parent", c.level, n.level)
		}
		if strings.Contains(c.level, "/") {
			for _, l := range strings.Split(c.level, "/") {
				if isWildcard(l) {
					t.Fatalf("compressed key %q holds a wildcard", c.level)
				}
			}
		}
		checkShape(t, c)
	}
}
