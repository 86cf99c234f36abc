package server

import (
	"log/slog"
	"maps"
	"sync"
	"sync/atomic"
	"time"
)

// histogram is a fixed-bucket latency histogram.
type histogram struct {
	bounds []float64 // seconds
	counts []atomic.Uint64
	count  atomic.Uint64
	sumNS  atomic.Int64
}

func newHistogram() *histogram {
	b := []float64{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}
	return &histogram{bounds: b, counts: make([]atomic.Uint64, len(b))}
}

func (h *histogram) observe(d time.Duration) {
	s := d.Seconds()
	for i, b := range h.bounds {
		if s <= b {
			h.counts[i].Add(1)
			break
		}
	}
	h.count.Add(1)
	h.sumNS.Add(int64(d))
}

func (h *histogram) snapshot() Histogram {
	out := Histogram{Buckets: make(map[float64]uint64, len(h.bounds))}
	var cum uint64
	for i, b := range h.bounds {
		cum += h.counts[i].Load()
		out.Buckets[b] = cum
	}
	out.Count = h.count.Load()
	out.Sum = time.Duration(h.sumNS.Load()).Seconds()
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

	dropMu   sync.Mutex
	drops    map[string]uint64
	dropLog  map[string]time.Time // last log line per reason
	dropSkip map[string]uint64    // drops not logged since
}

func newCounters() *counters {
	return &counters{commit: newHistogram(), drops: make(map[string]uint64),
		dropLog: make(map[string]time.Time), dropSkip: make(map[string]uint64)}
}

// drop counts n dropped messages and logs them, at most one line per
// reason and second (with the number of drops it summarises).
func (c *counters) drop(log *slog.Logger, clientID, reason string, n int) {
	c.dropMu.Lock()
	c.drops[reason] += uint64(n)
	now := time.Now()
	skipped := c.dropSkip[reason] + uint64(n)
	logIt := now.Sub(c.dropLog[reason]) >= time.Second
	if logIt {
		c.dropLog[reason] = now
		c.dropSkip[reason] = 0
	} else {
		c.dropSkip[reason] = skipped
	}
	c.dropMu.Unlock()
	if logIt {
		log.Warn("messages dropped", "reason", reason, "client", clientID, "count", skipped)
	}
}

func (c *counters) dropSnapshot() map[string]uint64 {
	c.dropMu.Lock()
	defer c.dropMu.Unlock()
	return maps.Clone(c.drops)
}

// Stats returns a snapshot of the broker's counters.
func (s *Server) Stats() Stats {
	st := Stats{
		Connections: s.stats.connections.Load(),
		Retained:    int64(s.router.RetainedCount()),
		Drops:       s.stats.dropSnapshot(),
		Refusals:    s.refused.snapshot(),
		Storage:     s.storageStats(),
		BytesIn:     s.stats.bytesIn.Load(),
		BytesOut:    s.stats.bytesOut.Load(),
		Commit:      s.stats.commit.snapshot(),

		Policies:         s.policyStats(),
		ConfigGeneration: s.gen.Load(),
		ConnectionPanics: s.stats.panics.Load(),

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
	for _, si := range s.Sessions() {
		if si.Online {
			st.SessionsOnline++
		} else {
			st.SessionsOffline++
		}
		st.QueuedMessages += si.QueuedMessages
		st.QueuedBytes += si.QueuedBytes
	}
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
