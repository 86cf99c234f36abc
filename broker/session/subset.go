package session

import (
	"slices"

	"github.com/bollard-io/bollard/broker/store"
)

// subSet holds a session's subscriptions: a slice while there are few
// (most sessions have one or two, and a map costs some 400 bytes even for
// one, which adds up over many offline sessions), a map beyond fewSubs.
type subSet struct {
	few  []store.Subscription
	many map[string]store.Subscription
}

const fewSubs = 8

func (ss *subSet) len() int {
	if ss.many != nil {
		return len(ss.many)
	}
	return len(ss.few)
}

func (ss *subSet) index(filter string) int {
	for i := range ss.few {
		if ss.few[i].Filter == filter {
			return i
		}
	}
	return -1
}

func (ss *subSet) has(filter string) bool {
	if ss.many != nil {
		_, ok := ss.many[filter]
		return ok
	}
	return ss.index(filter) >= 0
}

// get returns the subscription with filter.
func (ss *subSet) get(filter string) (store.Subscription, bool) {
	if ss.many != nil {
		sub, ok := ss.many[filter]
		return sub, ok
	}
	if i := ss.index(filter); i >= 0 {
		return ss.few[i], true
	}
	return store.Subscription{}, false
}

// grow makes room for n subscriptions more, in one allocation.
func (ss *subSet) grow(n int) {
	if ss.many == nil && len(ss.few)+n <= fewSubs {
		ss.few = slices.Grow(ss.few, n)
	}
}

// put adds or replaces the subscription with sub's filter.
func (ss *subSet) put(sub store.Subscription) {
	if ss.many != nil {
		ss.many[sub.Filter] = sub
		return
	}
	if i := ss.index(sub.Filter); i >= 0 {
		ss.few[i] = sub
		return
	}
	if len(ss.few) < fewSubs {
		ss.few = append(ss.few, sub)
		return
	}
	ss.many = make(map[string]store.Subscription, 2*fewSubs)
	for _, s := range ss.few {
		ss.many[s.Filter] = s
	}
	ss.many[sub.Filter] = sub
	ss.few = nil
}

// del removes the subscription with filter and reports whether it existed.
func (ss *subSet) del(filter string) bool {
	if ss.many != nil {
		_, ok := ss.many[filter]
		delete(ss.many, filter)
		return ok
	}
	i := ss.index(filter)
	if i < 0 {
		return false
	}
	ss.few = append(ss.few[:i], ss.few[i+1:]...)
	return true
}

// appendTo appends every subscription to dst, in no particular order.
func (ss *subSet) appendTo(dst []store.Subscription) []store.Subscription {
	if ss.many != nil {
		for _, s := range ss.many {
			dst = append(dst, s)
		}
		return dst
	}
	return append(dst, ss.few...)
}

// filters yields the filter of every subscription.
func (ss *subSet) filters(yield func(string) bool) {
	if ss.many != nil {
		for f := range ss.many {
			if !yield(f) {
				return
			}
		}
		return
	}
	for i := range ss.few {
		if !yield(ss.few[i].Filter) {
			return
		}
	}
}
