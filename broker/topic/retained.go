package topic

import (
	"strings"
	"sync"
)

// Retained indexes values (retained messages) by topic name and finds the
// ones a subscription filter matches. It is safe for concurrent use; the
// zero Retained is empty and ready to use. It must not be copied after first
// use.
type Retained[V any] struct {
	mu    sync.RWMutex
	root  rnode[V]
	count int
}

type rnode[V any] struct {
	parent   *rnode[V]
	level    string
	children map[string]*rnode[V]
	topic    string // full topic name, set when has is true
	value    V
	has      bool
}

// Set stores value under topicName, replacing any previous value, and
// reports whether one was replaced. topicName must be a valid topic name
// (see ValidateName); names containing wildcards are not rejected here but
// are never matched as wildcards.
func (r *Retained[V]) Set(topicName string, value V) (replaced bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := &r.root
	for level := range strings.SplitSeq(topicName, "/") {
		c := n.children[level]
		if c == nil {
			c = &rnode[V]{parent: n, level: level}
			if n.children == nil {
				n.children = make(map[string]*rnode[V])
			}
			n.children[level] = c
		}
		n = c
	}
	replaced = n.has
	if !replaced {
		r.count++
	}
	n.topic, n.value, n.has = topicName, value, true
	return replaced
}

// Get returns the value stored under topicName.
func (r *Retained[V]) Get(topicName string) (V, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if n := r.find(topicName); n != nil && n.has {
		return n.value, true
	}
	var zero V
	return zero, false
}

// Delete removes the value stored under topicName and reports whether there
// was one (a retained message with an empty payload deletes the retained
// message [MQTT-3.3.1-10]).
func (r *Retained[V]) Delete(topicName string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := r.find(topicName)
	if n == nil || !n.has {
		return false
	}
	var zero V
	n.topic, n.value, n.has = "", zero, false
	r.count--
	for n.parent != nil && !n.has && len(n.children) == 0 {
		delete(n.parent.children, n.level)
		n = n.parent
	}
	return true
}

func (r *Retained[V]) find(topicName string) *rnode[V] {
	n := &r.root
	for level := range strings.SplitSeq(topicName, "/") {
		if n = n.children[level]; n == nil {
			return nil
		}
	}
	return n
}

// Len returns the number of stored topics.
func (r *Retained[V]) Len() int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.count
}

// Match calls fn for every stored topic that filter matches, until fn
// returns false. filter must be a valid, non-shared topic filter; "+" and
// "#" in a leading level do not match topics starting with '$'
// [MQTT-4.7.2-1]. (MQTT 5.0 sends no retained messages when a shared
// subscription is made, section 4.8.2, so callers have no "$share/" filter
// to pass; one would be matched literally.)
//
// fn runs under the read lock: it must not call methods of r, and should be
// quick (copy what it needs). The order of calls is unspecified.
func (r *Retained[V]) Match(filter string, fn func(topicName string, value V) bool) {
	if filter == "" {
		return
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	r.root.match(filter, true, fn)
}

// match matches the levels of filter against the children of n. first is
// true at the root, where the '$' rule applies. It returns false to stop.
func (n *rnode[V]) match(filter string, first bool, fn func(string, V) bool) bool {
	level, rest, more := strings.Cut(filter, "/")
	switch level {
	case "#":
		// '#' matches the parent level too ("a/#" matches "a") [MQTT-4.7.1-2].
		if !first && n.has && !fn(n.topic, n.value) {
			return false
		}
		return n.eachChild(first, func(c *rnode[V]) bool { return c.all(fn) })
	case "+":
		return n.eachChild(first, func(c *rnode[V]) bool { return c.visit(rest, more, fn) })
	}
	if c := n.children[level]; c != nil {
		return c.visit(rest, more, fn)
	}
	return true
}

// visit handles a child that matched one filter level.
func (n *rnode[V]) visit(rest string, more bool, fn func(string, V) bool) bool {
	if !more {
		return !n.has || fn(n.topic, n.value)
	}
	return n.match(rest, false, fn)
}

// eachChild calls f on each child, skipping '$' levels at the root
// [MQTT-4.7.2-1].
func (n *rnode[V]) eachChild(first bool, f func(*rnode[V]) bool) bool {
	for level, c := range n.children {
		if first && strings.HasPrefix(level, "$") {
			continue
		}
		if !f(c) {
			return false
		}
	}
	return true
}

// all calls fn for n and every descendant.
func (n *rnode[V]) all(fn func(string, V) bool) bool {
	if n.has && !fn(n.topic, n.value) {
		return false
	}
	for _, c := range n.children {
		if !c.all(fn) {
			return false
		}
	}
	return true
}
