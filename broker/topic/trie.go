package topic

import (
	"strings"
	"sync"
	"sync/atomic"
)

// Trie holds subscriptions: one value of type V per (subscriber ID, filter)
// pair. The value is the caller's (typically the subscription options).
//
// Filters starting with "$share/" are shared subscriptions [MQTT-4.8.2]:
// they are grouped by (share name, inner filter) and Match reports each group
// once, with all its members, so that the caller delivers to one member.
//
// A Trie is safe for concurrent use. Match takes a read lock and runs in
// parallel with other Matches; Add and Remove take the write lock. The zero
// Trie is empty and ready to use. A Trie must not be copied after first use.
type Trie[V any] struct {
	mu    sync.RWMutex
	root  node[V]
	count int
}

// Sub is one matched subscription.
type Sub[V any] struct {
	// SubscriberID identifies the subscriber (the MQTT client ID).
	SubscriberID string
	// Filter is the filter exactly as passed to Add ("$share/g/a/+" for a
	// shared subscription).
	Filter string
	// Value is the caller's value for (SubscriberID, Filter).
	Value V
}

// SharedMatch is a shared subscription group that matched a topic name.
type SharedMatch[V any] struct {
	// Group is the share name.
	Group string
	// Filter is the inner filter (without "$share/{group}/").
	Filter string
	// Members are the group's subscriptions, in the order they joined.
	// The slice is shared with the Trie and must not be modified; it stays
	// valid (as a snapshot) after later Adds and Removes.
	Members []Sub[V]
	next    *atomic.Uint64
}

// Pick chooses one member round-robin, skipping members for which accept
// returns false (for example, disconnected sessions). accept may be nil to
// accept every member. The round-robin position is kept per group in the
// Trie, so successive Matches rotate through the members. It returns false
// when no member is accepted. Pick is safe for concurrent use.
func (s SharedMatch[V]) Pick(accept func(Sub[V]) bool) (Sub[V], bool) {
	n := len(s.Members)
	if n == 0 {
		return Sub[V]{}, false
	}
	start := 0
	if s.next != nil {
		start = int((s.next.Add(1) - 1) % uint64(n))
	}
	for i := range n {
		m := s.Members[(start+i)%n]
		if accept == nil || accept(m) {
			return m, true
		}
	}
	return Sub[V]{}, false
}

// Matches receives the result of Trie.Match. Reuse one across calls (for
// example from a sync.Pool) to avoid allocations: Match resets it first.
type Matches[V any] struct {
	// Subs are the non-shared subscriptions that match, one entry per
	// (subscriber, filter): a subscriber whose filters overlap appears once
	// per matching filter, and the caller decides how to merge them
	// (MQTT 5.0 section 4.7.1 allows either).
	Subs []Sub[V]
	// Shared are the matching shared subscription groups; deliver to one
	// member of each (see SharedMatch.Pick).
	Shared []SharedMatch[V]
}

// Reset empties m, keeping its capacity.
func (m *Matches[V]) Reset() {
	clear(m.Subs) // drop references held by values
	m.Subs = m.Subs[:0]
	clear(m.Shared)
	m.Shared = m.Shared[:0]
}

// Len returns the number of non-shared subscriptions plus shared groups.
func (m *Matches[V]) Len() int { return len(m.Subs) + len(m.Shared) }

// node is one level of the trie. A broker with a million sessions holds
// millions of nodes, most with one child or one subscriber ("fleet/{id}/cmd"
// per device), so a node keeps what most nodes need inline and the rest in
// an extra part allocated on first use: named children are a short slice
// (a map only beyond fewKids), subscribers a slice (indexed by a map only
// beyond fewSubs); wildcard children and shared groups live in extra.
//
// A chain of named levels in which only the last holds anything (the
// "{id}/cmd" of "fleet/{id}/cmd": one subscriber, no other child) is one
// node whose key holds the chain's levels joined by '/': path
// compression, one node per subscription instead of one per level. The
// levels inside a key are never wildcards, and a key is always a substring
// of a filter passed to Add (no copy). An Add whose filter leaves a
// compressed chain part way splits the node; a Remove does not merge a
// chain back (a later Add of the remainder reuses it).
type node[V any] struct {
	parent *node[V]
	// level is the key of this node in its parent: one level, or several
	// named levels joined by '/'; the parent finds it by its first level.
	level string
	kids  []*node[V] // named children while there are at most fewKids
	// Non-shared subscriptions: a slice for fast iteration in Match,
	// searched by subscriber ID while short, indexed by extra.idx beyond.
	subs []Sub[V]
	x    *extra[V] // nil while unused
}

// extra is the part of a node that few nodes need.
type extra[V any] struct {
	kids   map[string]*node[V] // named children beyond fewKids (then node.kids is nil)
	plus   *node[V]            // child for '+'
	hash   *node[V]            // child for '#'
	idx    map[string]int      // index of subs by subscriber ID beyond fewSubs
	shared []*group[V]
}

// Past these sizes a node indexes its children and subscribers by map.
const (
	fewKids = 8
	fewSubs = 8
)

func (x *extra[V]) empty() bool {
	return x.kids == nil && x.plus == nil && x.hash == nil && x.idx == nil && len(x.shared) == 0
}

// group is a shared subscription group. members is copy-on-write: Match
// hands out the slice without copying it.
type group[V any] struct {
	name    string
	filter  string // full "$share/{name}/{inner}"
	members []Sub[V]
	next    atomic.Uint64
}

// inner is the group's filter without "$share/{name}/".
func (g *group[V]) inner() string { return g.filter[len(SharePrefix)+len(g.name)+1:] }

func (n *node[V]) empty() bool {
	return len(n.subs) == 0 && len(n.kids) == 0 && (n.x == nil || n.x.empty())
}

func (n *node[V]) ext() *extra[V] {
	if n.x == nil {
		n.x = &extra[V]{}
	}
	return n.x
}

// trim drops the extra part once it holds nothing.
func (n *node[V]) trim() {
	if n.x != nil && n.x.empty() {
		n.x = nil
	}
}

func (n *node[V]) plusChild() *node[V] {
	if n.x == nil {
		return nil
	}
	return n.x.plus
}

func (n *node[V]) hashChild() *node[V] {
	if n.x == nil {
		return nil
	}
	return n.x.hash
}

func (n *node[V]) sharedGroups() []*group[V] {
	if n.x == nil {
		return nil
	}
	return n.x.shared
}

// Add stores value for (filter, subscriberID). It returns replaced=true when
// the pair already existed; its value is then overwritten (a re-SUBSCRIBE
// with new options [MQTT-3.8.4-3]). filter may be a "$share/" filter. An
// invalid filter is rejected with the error of ValidateFilter or ParseShared.
func (t *Trie[V]) Add(filter, subscriberID string, value V) (replaced bool, err error) {
	group, inner, shared, err := ParseShared(filter)
	if err != nil {
		return false, err
	}
	if !shared {
		if err := ValidateFilter(filter); err != nil {
			return false, err
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.root.descend(inner)
	sub := Sub[V]{SubscriberID: subscriberID, Filter: filter, Value: value}
	if shared {
		replaced = n.addShared(group, sub)
	} else {
		replaced = n.addSub(sub)
	}
	if !replaced {
		t.count++
	}
	return replaced, nil
}

// descend returns the node for filter, creating missing nodes: a missing
// run of named levels becomes one node, and a compressed node that filter
// leaves part way is split where it does.
func (n *node[V]) descend(filter string) *node[V] {
	for {
		level := levelOf(filter)
		c := n.child(level)
		if c == nil {
			c = &node[V]{parent: n, level: filter[:chainEnd(filter)]}
			n.setChild(level, c)
		} else if common := commonLevels(c.level, filter); common < len(c.level) {
			c = c.split(common)
		}
		n = c
		if len(c.level) == len(filter) {
			return n
		}
		filter = filter[len(c.level)+1:]
	}
}

// chainEnd is the length of the longest run of levels at the start of
// filter that one node may hold: up to the first wildcard level, or the
// wildcard alone when the first level is one.
func chainEnd(filter string) int {
	if isWildcard(levelOf(filter)) {
		return len(levelOf(filter))
	}
	for pos := 0; ; {
		i := strings.IndexByte(filter[pos:], '/')
		if i < 0 {
			return len(filter)
		}
		next := filter[pos+i+1:]
		if isWildcard(levelOf(next)) {
			return pos + i
		}
		pos += i + 1
	}
}

func isWildcard(level string) bool { return level == "+" || level == "#" }

// commonLevels is the length of the longest common prefix of key and
// filter that ends at a level boundary in both (the levels they share);
// their first levels are equal.
func commonLevels(key, filter string) int {
	end := 0
	for i := 0; ; i++ {
		kEnd, fEnd := i == len(key), i == len(filter)
		if kEnd || fEnd {
			if (kEnd || key[i] == '/') && (fEnd || filter[i] == '/') {
				end = i
			}
			return end
		}
		if key[i] != filter[i] {
			return end
		}
		if key[i] == '/' {
			end = i
		}
	}
}

// split cuts n's key after its first keyLen bytes (a level boundary): a
// new node with that part takes n's place in its parent, and n, keyed by
// the rest, becomes its only child. It returns the new node.
func (n *node[V]) split(keyLen int) *node[V] {
	p := n.parent
	mid := &node[V]{parent: p, level: n.level[:keyLen]}
	p.replaceNamed(n, mid)
	n.level, n.parent = n.level[keyLen+1:], mid
	mid.kids = []*node[V]{n}
	return mid
}

// replaceNamed puts c in the place of its named child old (same first
// level).
func (n *node[V]) replaceNamed(old, c *node[V]) {
	if n.x != nil && n.x.kids != nil {
		n.x.kids[levelOf(old.level)] = c
		return
	}
	for i, k := range n.kids {
		if k == old {
			n.kids[i] = c
			return
		}
	}
}

func (n *node[V]) child(level string) *node[V] {
	switch level {
	case "+":
		return n.plusChild()
	case "#":
		return n.hashChild()
	}
	return n.named(level)
}

// named returns the child whose key starts with level, which is not a
// wildcard.
func (n *node[V]) named(level string) *node[V] {
	if n.x != nil && n.x.kids != nil {
		return n.x.kids[level]
	}
	for _, c := range n.kids {
		if firstIs(c.level, level) {
			return c
		}
	}
	return nil
}

// firstIs reports whether key's first level is level.
func firstIs(key, level string) bool {
	return len(key) >= len(level) && key[:len(level)] == level && (len(key) == len(level) || key[len(level)] == '/')
}

// setChild links c under level, or unlinks the child for level when c is
// nil.
func (n *node[V]) setChild(level string, c *node[V]) {
	switch level {
	case "+":
		n.ext().plus = c
	case "#":
		n.ext().hash = c
	default:
		if c == nil {
			n.unlinkNamed(level)
		} else {
			n.linkNamed(c)
		}
	}
	n.trim()
}

func (n *node[V]) linkNamed(c *node[V]) {
	if n.x != nil && n.x.kids != nil {
		n.x.kids[levelOf(c.level)] = c
		return
	}
	if len(n.kids) < fewKids {
		n.kids = append(n.kids, c)
		return
	}
	m := make(map[string]*node[V], 2*fewKids)
	for _, k := range n.kids {
		m[levelOf(k.level)] = k
	}
	m[levelOf(c.level)] = c
	n.ext().kids, n.kids = m, nil
}

func (n *node[V]) unlinkNamed(level string) {
	if n.x != nil && n.x.kids != nil {
		delete(n.x.kids, level)
		if len(n.x.kids) == 0 {
			n.x.kids = nil
		}
		return
	}
	for i, c := range n.kids {
		if firstIs(c.level, level) {
			last := len(n.kids) - 1
			n.kids[i] = n.kids[last]
			n.kids[last] = nil
			n.kids = n.kids[:last]
			break
		}
	}
	if len(n.kids) == 0 {
		n.kids = nil
	}
}

// subIndex returns the position of subscriberID in subs, or -1.
func (n *node[V]) subIndex(subscriberID string) int {
	if n.x != nil && n.x.idx != nil {
		if i, ok := n.x.idx[subscriberID]; ok {
			return i
		}
		return -1
	}
	for i := range n.subs {
		if n.subs[i].SubscriberID == subscriberID {
			return i
		}
	}
	return -1
}

func (n *node[V]) addSub(sub Sub[V]) (replaced bool) {
	if i := n.subIndex(sub.SubscriberID); i >= 0 {
		n.subs[i] = sub
		return true
	}
	n.subs = append(n.subs, sub)
	switch {
	case n.x != nil && n.x.idx != nil:
		n.x.idx[sub.SubscriberID] = len(n.subs) - 1
	case len(n.subs) > fewSubs:
		idx := make(map[string]int, 2*len(n.subs))
		for i := range n.subs {
			idx[n.subs[i].SubscriberID] = i
		}
		n.ext().idx = idx
	}
	return false
}

func (n *node[V]) removeSub(subscriberID string) bool {
	i := n.subIndex(subscriberID)
	if i < 0 {
		return false
	}
	idx := map[string]int(nil)
	if n.x != nil {
		idx = n.x.idx
	}
	last := len(n.subs) - 1
	if i != last {
		n.subs[i] = n.subs[last]
		if idx != nil {
			idx[n.subs[i].SubscriberID] = i
		}
	}
	n.subs[last] = Sub[V]{}
	n.subs = n.subs[:last]
	if idx != nil {
		delete(idx, subscriberID)
		if len(n.subs) <= fewSubs/2 {
			n.x.idx = nil
			n.trim()
		}
	}
	if len(n.subs) == 0 {
		n.subs = nil
	}
	return true
}

func (n *node[V]) findGroup(name string) (int, *group[V]) {
	for i, g := range n.sharedGroups() {
		if g.name == name {
			return i, g
		}
	}
	return -1, nil
}

func (n *node[V]) addShared(name string, sub Sub[V]) (replaced bool) {
	_, g := n.findGroup(name)
	if g == nil {
		g = &group[V]{name: name, filter: sub.Filter}
		x := n.ext()
		x.shared = append(x.shared, g)
	}
	members := make([]Sub[V], 0, len(g.members)+1)
	for _, m := range g.members {
		if m.SubscriberID == sub.SubscriberID {
			replaced = true
			m = sub
		}
		members = append(members, m)
	}
	if !replaced {
		members = append(members, sub)
	}
	g.members = members
	return replaced
}

func (n *node[V]) removeShared(name, subscriberID string) bool {
	gi, g := n.findGroup(name)
	if g == nil {
		return false
	}
	members := make([]Sub[V], 0, len(g.members))
	for _, m := range g.members {
		if m.SubscriberID != subscriberID {
			members = append(members, m)
		}
	}
	if len(members) == len(g.members) {
		return false
	}
	if len(members) > 0 {
		g.members = members
		return true
	}
	x := n.x
	last := len(x.shared) - 1
	x.shared[gi] = x.shared[last]
	x.shared[last] = nil
	x.shared = x.shared[:last]
	if len(x.shared) == 0 {
		x.shared = nil
		n.trim()
	}
	return true
}

// Remove deletes the subscription (filter, subscriberID) and reports whether
// it existed. An invalid filter is never present, so Remove returns false.
func (t *Trie[V]) Remove(filter, subscriberID string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remove(filter, subscriberID)
}

// RemoveAll deletes the subscriptions of subscriberID for each of filters
// (the subscriber's filters, as the session records them) under one lock
// acquisition, and returns how many existed.
func (t *Trie[V]) RemoveAll(subscriberID string, filters []string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	removed := 0
	for _, f := range filters {
		if t.remove(f, subscriberID) {
			removed++
		}
	}
	return removed
}

func (t *Trie[V]) remove(filter, subscriberID string) bool {
	group, inner, shared, err := ParseShared(filter)
	if err != nil || inner == "" {
		return false
	}
	n := t.root.find(inner)
	if n == nil {
		return false
	}
	var ok bool
	if shared {
		ok = n.removeShared(group, subscriberID)
	} else {
		ok = n.removeSub(subscriberID)
	}
	if ok {
		t.count--
		n.prune()
	}
	return ok
}

// find returns the node for filter, or nil.
func (n *node[V]) find(filter string) *node[V] {
	for {
		n = n.child(levelOf(filter))
		if n == nil || !firstIs(filter, n.level) {
			return nil
		}
		if len(n.level) == len(filter) {
			return n
		}
		filter = filter[len(n.level)+1:]
	}
}

// prune unlinks n and its ancestors while they are empty.
func (n *node[V]) prune() {
	for n.parent != nil && n.empty() {
		n.parent.setChild(levelOf(n.level), nil)
		n = n.parent
	}
}

// Count returns the number of (subscriber, filter) pairs stored, shared
// subscriptions included.
func (t *Trie[V]) Count() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.count
}

// Match resets m and fills it with the subscriptions whose filter matches
// topicName, which should be a valid topic name (see ValidateName). The
// order of the results is unspecified.
func (t *Trie[V]) Match(topicName string, m *Matches[V]) {
	m.Reset()
	if topicName == "" {
		return
	}
	t.mu.RLock()
	defer t.mu.RUnlock()
	// [MQTT-4.7.2-1] a leading '+' or '#' does not match a '$' topic.
	dollar := topicName[0] == '$'
	root := &t.root
	if !dollar {
		if h := root.hashChild(); h != nil {
			h.collect(m)
		}
		if p := root.plusChild(); p != nil {
			p.match(topicName, m)
		}
	}
	if c := root.named(levelOf(topicName)); c != nil {
		c.match(topicName, m)
	}
}

// match is called on a node whose first level matched the first level of
// name; it checks the rest of the node's key (a compressed chain) and
// collects this node (if name has no more levels) or descends.
func (n *node[V]) match(name string, m *Matches[V]) {
	for {
		rest, more, ok := n.consume(name)
		if !ok {
			return
		}
		if !more {
			// Last level consumed: this node and its '#' child ("a/#"
			// matches "a") [MQTT-4.7.1-2].
			n.collect(m)
			if h := n.hashChild(); h != nil {
				h.collect(m)
			}
			return
		}
		name = rest
		if n.x != nil {
			if n.x.hash != nil {
				n.x.hash.collect(m)
			}
			if n.x.plus != nil {
				n.x.plus.match(name, m)
			}
		}
		n = n.named(levelOf(name))
		if n == nil {
			return
		}
	}
}

// consume matches n's key against the first levels of name: a '+' node
// takes any one level, a named node its key's levels exactly. It returns
// the levels after them (more: there are some).
func (n *node[V]) consume(name string) (rest string, more, ok bool) {
	k := len(n.level)
	if n.level == "+" {
		k = len(levelOf(name))
	} else if !firstIs(name, n.level) {
		return "", false, false
	}
	if k == len(name) {
		return "", false, true
	}
	return name[k+1:], true, true
}

func levelOf(name string) string {
	if i := strings.IndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return name
}

func (n *node[V]) collect(m *Matches[V]) {
	m.Subs = append(m.Subs, n.subs...)
	for _, g := range n.sharedGroups() {
		m.Shared = append(m.Shared, SharedMatch[V]{
			Group: g.name, Filter: g.inner(), Members: g.members, next: &g.next,
		})
	}
}
