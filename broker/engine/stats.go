package engine

import (
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// histogram is a latency histogram (store.LatencyBounds buckets).
type histogram struct{ store.Latencies }

func newHistogram() *histogram { return &histogram{} }

func (h *histogram) observe(d time.Duration) { h.Observe(d) }

func (h *histogram) snapshot() Histogram { return histogramOf(h.Snapshot()) }

// histogramOf converts a store latency snapshot for Stats.
func histogramOf(s store.LatencySnapshot) Histogram {
	out := Histogram{Buckets: make(map[float64]uint64, len(store.LatencyBounds)), Count: s.Count, Sum: s.Sum.Seconds()}
	for i, b := range store.LatencyBounds {
		out.Buckets[b] = s.Cumulative[i]
	}
	return out
}

// counters are the server's statistics.
type counters struct {
	connections atomic.Int64
	msgsIn      [3]atomic.Uint64
	msgsOut     [3]atomic.Uint64
	bytesIn     atomic.Uint64
	bytesOut    atomic.Uint64
	commit      *histogram
	panics      atomic.Uint64 // recovered panics of connections (recover.go)

	dropMu sync.Mutex
	drops  map[string]*dropStat // by reason
	recent dropWindow           // the slots of dropStat.recent
}

func newCounters() *counters {
	return &counters{commit: newHistogram(), drops: make(map[string]*dropStat)}
}

// drop counts n dropped messages and logs them, at most one line per
// reason and second (with the number of drops it summarises).
func (c *counters) drop(log *slog.Logger, clientID, reason string, n int) {
	if count, logIt := c.countDrop(time.Now(), reason, uint64(n)); logIt {
		log.Warn("messages dropped", "reason", reason, "client", clientID, "count", count)
	}
}

// countDrop counts n drops for reason at now, and reports whether a log
// line is due and how many drops it tells of.
func (c *counters) countDrop(now time.Time, reason string, n uint64) (count uint64, logIt bool) {
	c.dropMu.Lock()
	defer c.dropMu.Unlock()
	st := c.drops[reason]
	if st == nil {
		st = &dropStat{}
		c.drops[reason] = st
	}
	st.total += n
	st.recent[c.recent.slot(now, c.drops)] += n
	st.unlogged += n
	if now.Sub(st.lastLog) < time.Second {
		return 0, false
	}
	count, st.lastLog, st.unlogged = st.unlogged, now, 0
	return count, true
}

func (c *counters) dropSnapshot(now time.Time) (total, recent map[string]uint64) {
	c.dropMu.Lock()
	defer c.dropMu.Unlock()
	total = make(map[string]uint64, len(c.drops))
	for r, st := range c.drops {
		total[r] = st.total
	}
	return total, c.recent.sum(now, c.drops)
}

// Stats returns a snapshot of the broker's counters. The session figures
// (sessions, queued messages and bytes, top queues, fullest queue) come
// from a census at most a second old (census.go, CensusAt says when); the
// counters are current.
func (s *Server) Stats() Stats {
	drops, recent := s.stats.dropSnapshot(time.Now())
	st := Stats{
		Connections:      s.stats.connections.Load(),
		Retained:         int64(s.router.RetainedCount()),
		Drops:            drops,
		RecentDrops:      recent,
		Refusals:         s.refused.snapshot(),
		ConnectionErrors: s.connErrs.snapshot(),
		Storage:          s.storageStats(),
		BytesIn:          s.stats.bytesIn.Load(),
		BytesOut:         s.stats.bytesOut.Load(),
		Commit:           s.stats.commit.snapshot(),

		Policies:          s.policyStats(),
		ConfigGeneration:  s.gen.Load(),
		MetricsTopQueues:  s.config().Admin.MetricsTopQueues,
		ConnectionPanics:  s.stats.panics.Load(),
		StoreCommitErrors: s.storeErrs.n.Load(),

		LoginRefusedBusy:      s.logins.busy.Load(),
		LoginRefusedBackoff:   s.logins.backedUp.Load(),
		LoginFailures:         s.logins.failures.Load(),
		LoginChecksInFlight:   int64(s.logins.checks.inFlight()),
		LoginBackoffAddresses: int64(s.logins.backoff.len()),
	}
	for i := range 3 {
		st.MessagesIn[i] = s.stats.msgsIn[i].Load()
		st.MessagesOut[i] = s.stats.msgsOut[i].Load()
	}
	if f, ok := s.store.(store.FsyncReporter); ok {
		st.Fsync = histogramOf(f.FsyncLatency())
	}
	if r, ok := s.store.(store.StallReporter); ok {
		ws := r.WriteStalls()
		st.WriteStalls = &ws
	}
	if r, ok := s.store.(store.LSMReporter); ok {
		if lsm, ok := r.LSM(); ok {
			st.LSM = &lsm
		}
	}
	c := s.census()
	st.CensusAt, st.SessionsOnline, st.SessionsOffline = c.at, c.online, c.offline
	st.QueuedMessages, st.QueuedBytes, st.FullestQueue = c.msgs, c.bytes, c.fullest
	st.TopQueues = slices.Clone(c.top)
	return st
}

// Sessions lists every session, online and offline, in no particular
// order.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	list := make([]*sessionEntry, 0, len(s.sessions))
	for _, e := range s.sessions {
		list = append(list, e)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(list))
	for _, e := range list {
		out = append(out, infoOf(e))
	}
	return out
}

// Session describes the session of clientID.
func (s *Server) Session(clientID string) (SessionInfo, bool) {
	s.mu.Lock()
	e := s.sessions[clientID]
	s.mu.Unlock()
	if e == nil {
		return SessionInfo{}, false
	}
	return infoOf(e), true
}

func infoOf(e *sessionEntry) SessionInfo {
	i := e.sess.Info()
	return SessionInfo{
		ClientID: i.ClientID, Principal: i.Principal, Online: i.Online,
		ProtocolVersion: i.ProtocolVersion, Persistent: i.Persistent,
		ExpiryInterval: i.ExpiryInterval, ExpiresAt: i.ExpiresAt,
		QueuedMessages: i.QueuedMessages, QueuedBytes: i.QueuedBytes,
		Inflight: i.Inflight, Subscriptions: i.Subscriptions, Policy: i.Policy,
	}
}
