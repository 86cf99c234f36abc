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

type node[V any] struct {
	parent   *node[V]
	level    string // key of this node in its parent
	filter   string // inner filter leading to this node
	children map[string]*node[V]
	plus     *node[V] // child for '+'
	hash     *node[V] // child for '#'

	// Non-shared subscriptions: a slice for fast iteration in Match and an
	// index by subscriber ID for Add and Remove.
	subs []Sub[V]
	idx  map[string]int

	shared []*group[V]
}

// group is a shared subscription group. members is copy-on-write: Match
// hands out the slice without copying it.
type group[V any] struct {
	name    string
	filter  string // full "$share/{name}/{inner}"
	members []Sub[V]
	next    atomic.Uint64
}

func (n *node[V]) empty() bool {
	return len(n.subs) == 0 && len(n.shared) == 0 && len(n.children) == 0 &&
		n.plus == nil && n.hash == nil
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

// descend returns the node for filter, creating missing nodes.
func (n *node[V]) descend(filter string) *node[V] {
	pos := 0
	for {
		level, _, more := strings.Cut(filter[pos:], "/")
		end := pos + len(level)
		c := n.child(level)
		if c == nil {
			c = &node[V]{parent: n, level: level, filter: filter[:end]}
			n.setChild(level, c)
		}
		n = c
		if !more {
			return n
		}
		pos = end + 1
	}
}

func (n *node[V]) child(level string) *node[V] {
	switch level {
	case "+":
		return n.plus
	case "#":
		return n.hash
	}
	return n.children[level]
}

func (n *node[V]) setChild(level string, c *node[V]) {
	switch level {
	case "+":
		n.plus = c
	case "#":
		n.hash = c
	default:
		if c == nil {
			delete(n.children, level)
			if len(n.children) == 0 {
				n.children = nil
			}
			return
		}
		if n.children == nil {
			n.children = make(map[string]*node[V])
		}
		n.children[level] = c
	}
}

func (n *node[V]) addSub(sub Sub[V]) (replaced bool) {
	if i, ok := n.idx[sub.SubscriberID]; ok {
		n.subs[i] = sub
		return true
	}
	if n.idx == nil {
		n.idx = make(map[string]int)
	}
	n.idx[sub.SubscriberID] = len(n.subs)
	n.subs = append(n.subs, sub)
	return false
}

func (n *node[V]) removeSub(subscriberID string) bool {
	i, ok := n.idx[subscriberID]
	if !ok {
		return false
	}
	last := len(n.subs) - 1
	if i != last {
		n.subs[i] = n.subs[last]
		n.idx[n.subs[i].SubscriberID] = i
	}
	n.subs[last] = Sub[V]{}
	n.subs = n.subs[:last]
	delete(n.idx, subscriberID)
	if len(n.subs) == 0 {
		n.subs, n.idx = nil, nil
	}
	return true
}

func (n *node[V]) findGroup(name string) (int, *group[V]) {
	for i, g := range n.shared {
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
		n.shared = append(n.shared, g)
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
	last := len(n.shared) - 1
	n.shared[gi] = n.shared[last]
	n.shared[last] = nil
	n.shared = n.shared[:last]
	if len(n.shared) == 0 {
		n.shared = nil
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
		level, rest, more := strings.Cut(filter, "/")
		n = n.child(level)
		if n == nil || !more {
			return n
		}
		filter = rest
	}
}

// prune unlinks n and its ancestors while they are empty.
func (n *node[V]) prune() {
	for n.parent != nil && n.empty() {
		n.parent.setChild(n.level, nil)
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
		if root.hash != nil {
			root.hash.collect(m)
		}
		if root.plus != nil {
			root.plus.match(topicName, m)
		}
	}
	if c := root.children[levelOf(topicName)]; c != nil {
		c.match(topicName, m)
	}
}

// match is called on a node that matched the first level of name; it
// collects this node (if name has no more levels) or descends.
func (n *node[V]) match(name string, m *Matches[V]) {
	for {
		i := strings.IndexByte(name, '/')
		if i < 0 {
			// Last level consumed: this node and its '#' child ("a/#"
			// matches "a") [MQTT-4.7.1-2].
			n.collect(m)
			if n.hash != nil {
				n.hash.collect(m)
			}
			return
		}
		name = name[i+1:]
		if n.hash != nil {
			n.hash.collect(m)
		}
		if n.plus != nil {
			n.plus.match(name, m)
		}
		n = n.children[levelOf(name)]
		if n == nil {
			return
		}
	}
}

func levelOf(name string) string {
	if i := strings.IndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return name
}

func (n *node[V]) collect(m *Matches[V]) {
	m.Subs = append(m.Subs, n.subs...)
	for _, g := range n.shared {
		m.Shared = append(m.Shared, SharedMatch[V]{
			Group: g.name, Filter: n.filter, Members: g.members, next: &g.next,
		})
	}
}
