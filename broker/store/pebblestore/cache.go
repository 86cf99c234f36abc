package pebblestore

// Write-through caches of queue runs and reference counts, so that the
// commits of a drain (entries marked Sent, then dequeued, their messages
// released) do not read what was just read or written.
//
// Both are exact: they change only in txn.publish, under s.mu, with the
// outcome of a commit that was applied, and every value put into them was
// read under s.mu or from a snapshot no commit touching it has followed
// (see putRead). A miss falls back to reading Pebble. Both are bounded:
// when full, arbitrary sessions' runs (and new counts) are dropped.

const (
	// runCacheMax bounds the entries held by cached runs and refCacheMax
	// the cached counts; at about 100 and 50 bytes each they take a few
	// MiB (inline messages that runs hold come on top, up to
	// maxRunBytes per run).
	runCacheMax = 1 << 14
	refCacheMax = 1 << 17
)

type refCount struct{ refs, size int64 }

type caches struct {
	// runs are by client ID, then by the seq in the run's key. Cached runs
	// are never changed: a commit clones the ones it changes.
	runs  map[string]map[uint64]*run
	nEnts int // entries in cached runs
	refs  map[uint64]refCount
	gen   uint64 // commits published
}

func (c *caches) init() {
	c.runs = make(map[string]map[uint64]*run)
	c.refs = make(map[uint64]refCount)
}

// run returns the cached run of clientID that holds seq, if any.
func (c *caches) run(clientID string, seq uint64) *run {
	for first, r := range c.runs[clientID] {
		if first <= seq && seq <= r.last() {
			return r
		}
	}
	return nil
}

func (c *caches) putRun(clientID string, r *run) {
	m := c.runs[clientID]
	if m == nil {
		m = make(map[uint64]*run)
		c.runs[clientID] = m
	}
	if old := m[r.first]; old != nil {
		c.nEnts -= len(old.ents)
	}
	m[r.first] = r
	c.nEnts += len(r.ents)
	if c.nEnts > runCacheMax {
		c.shrink(clientID, r.first)
	}
}

func (c *caches) dropRun(clientID string, first uint64) {
	m := c.runs[clientID]
	if r, ok := m[first]; ok {
		c.nEnts -= len(r.ents)
		delete(m, first)
		if len(m) == 0 {
			delete(c.runs, clientID)
		}
	}
}

func (c *caches) dropSession(clientID string) {
	for _, r := range c.runs[clientID] {
		c.nEnts -= len(r.ents)
	}
	delete(c.runs, clientID)
}

// shrink drops other sessions' runs until an eighth of the room is free,
// then keep's runs other than the one at first if that is not enough.
func (c *caches) shrink(keep string, first uint64) {
	target := runCacheMax - runCacheMax/8
	for id := range c.runs {
		if c.nEnts <= target {
			return
		}
		if id != keep {
			c.dropSession(id)
		}
	}
	for f := range c.runs[keep] {
		if c.nEnts <= target {
			return
		}
		if f != first {
			c.dropRun(keep, f)
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

// putRead caches runs of clientID read from a snapshot taken when c.gen
// was gen, unless a commit since then changed or removed existing entries
// of the session (si.modGen). s.mu is held.
func (s *Store) putRead(clientID string, gen uint64, runs []*run) {
	si := s.sessions[clientID]
	if si == nil || si.modGen > gen {
		return
	}
	for _, r := range runs {
		s.cache.putRun(clientID, r)
	}
}
