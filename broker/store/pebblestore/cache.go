package pebblestore

// Write-through caches of queue entries and reference counts, so that the
// commits of a drain (an entry marked Sent, then dequeued, its message
// released) do not read what was just read or written.
//
// Both are exact: they change only in txn.publish, under s.mu, with the
// outcome of a commit that was applied, and every value put into them was
// read under s.mu or from a snapshot no commit touching it has followed
// (see putRead). A miss falls back to reading Pebble. Both are bounded:
// when full, arbitrary entries are dropped.

const (
	// entryCacheMax and refCacheMax bound the caches (entries); at about
	// 100 and 50 bytes each they take a few MiB.
	entryCacheMax = 1 << 15
	refCacheMax   = 1 << 17
)

type refCount struct{ refs, size int64 }

type caches struct {
	entries map[string]map[uint64]storedEntry // by client ID, then seq
	nEntry  int
	refs    map[uint64]refCount
	gen     uint64 // commits published
}

func (c *caches) init() {
	c.entries = make(map[string]map[uint64]storedEntry)
	c.refs = make(map[uint64]refCount)
}

func (c *caches) entry(clientID string, seq uint64) (storedEntry, bool) {
	e, ok := c.entries[clientID][seq]
	return e, ok
}

func (c *caches) putEntry(clientID string, e storedEntry) {
	m := c.entries[clientID]
	if m == nil {
		if c.nEntry >= entryCacheMax {
			c.shrinkEntries()
		}
		m = make(map[uint64]storedEntry)
		c.entries[clientID] = m
	}
	if _, ok := m[e.Seq]; !ok {
		if c.nEntry >= entryCacheMax {
			c.shrinkEntries()
			if c.entries[clientID] == nil {
				c.entries[clientID] = m
			}
		}
		c.nEntry++
	}
	m[e.Seq] = e
}

func (c *caches) dropEntry(clientID string, seq uint64) {
	m := c.entries[clientID]
	if _, ok := m[seq]; ok {
		delete(m, seq)
		c.nEntry--
		if len(m) == 0 {
			delete(c.entries, clientID)
		}
	}
}

func (c *caches) dropSession(clientID string) {
	c.nEntry -= len(c.entries[clientID])
	delete(c.entries, clientID)
}

// shrinkEntries drops about an eighth of the cached entries.
func (c *caches) shrinkEntries() {
	target := c.nEntry - entryCacheMax/8
	for id, m := range c.entries {
		for seq := range m {
			delete(m, seq)
			c.nEntry--
		}
		delete(c.entries, id)
		if c.nEntry <= target {
			return
		}
	}
}

// putRef caches the count of message id. When the cache is full, new
// messages are not cached: the oldest messages, the next to be delivered
// and released, keep their place.
func (c *caches) putRef(id uint64, r refCount) {
	if _, ok := c.refs[id]; ok || len(c.refs) < refCacheMax {
		c.refs[id] = r
	}
}

// putRead caches entries of clientID read from a snapshot taken when
// c.gen was gen, unless a commit since then changed or removed existing
// entries of the session (si.modGen). s.mu is held.
func (s *Store) putRead(clientID string, gen uint64, es []storedEntry) {
	si := s.sessions[clientID]
	if si == nil || si.modGen > gen {
		return
	}
	for _, e := range es {
		s.cache.putEntry(clientID, e)
	}
}
