package pebblestore

import (
	"sync"

	"github.com/bollard-io/bollard/broker/store"
)

// msgCache holds decoded m/ messages (those with several references) by
// ID, so that the sessions a message was fanned out to, reading their
// queues back one after another, decode it once rather than once each.
// That is what DropOldest does on a fleet's full offline queues (each
// publish drops the oldest entry of every matching session, whose head is
// read back from the store sixteen entries at a time), and what a fleet's
// drain does after an outage.
//
// A cached message is never stale: a stored message never changes, an ID
// is never reused, and a queue entry can only name a message that exists.
// Messages handed out are shared, as the router shares one published
// message between the sessions it is offered to: nobody changes one.
//
// Bounded by count and by the messages' Size: when full, the oldest
// insertions go first; a message larger than a sixteenth of the byte bound
// is not cached.
type msgCache struct {
	mu    sync.Mutex
	byID  map[uint64]*store.Message
	order []uint64 // insertion order, from head on
	head  int
	bytes int64
}

const (
	msgCacheMax   = 4096
	msgCacheBytes = 8 << 20
)

func (c *msgCache) get(id uint64) *store.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byID[id]
}

func (c *msgCache) put(id uint64, m *store.Message) {
	size := m.Size()
	if size > msgCacheBytes/16 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byID == nil {
		c.byID = make(map[uint64]*store.Message)
	}
	if _, ok := c.byID[id]; ok {
		return
	}
	for len(c.byID) >= msgCacheMax || c.bytes+size > msgCacheBytes {
		old := c.order[c.head]
		c.head++
		c.bytes -= c.byID[old].Size()
		delete(c.byID, old)
	}
	if c.head > len(c.order)/2 {
		c.order = append(c.order[:0], c.order[c.head:]...)
		c.head = 0
	}
	c.byID[id] = m
	c.order = append(c.order, id)
	c.bytes += size
}
