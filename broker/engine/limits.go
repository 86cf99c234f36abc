package engine

import (
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/lograte"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/topic"
)

// Limits that refuse something, the keys of Stats.Refusals and the limit
// label of bollard_limit_refusals_total. Each refusal is counted once, when
// the broker refuses the packet, subscription, message or connection.
const (
	// LimitUserProperties: a packet with more user properties (count or
	// bytes) than limits.maxUserProperties / maxUserPropertyBytes.
	LimitUserProperties = "user_properties"
	// LimitTopic: a topic name or filter longer or deeper than
	// limits.maxTopicLength / maxTopicLevels.
	LimitTopic = "topic"
	// LimitSessions: a CONNECT that would create a session beyond
	// sessions.maxSessions.
	LimitSessions = "sessions"
	// LimitSessionsPerPrincipal: a CONNECT that would create a session
	// beyond sessions.maxSessionsPerPrincipal for its user (or for the
	// anonymous clients together).
	LimitSessionsPerPrincipal = "sessions_per_principal"
	// LimitRetained: a retained publish beyond limits.maxRetainedMessages,
	// maxRetainedBytes or the store budget (queues.maxStoreBytes).
	LimitRetained = "retained"
	// LimitInboundQoS2: a QoS 2 PUBLISH beyond limits.maxInflight inbound
	// QoS 2 exchanges awaiting their PUBREL.
	LimitInboundQoS2 = "inbound_qos2"
	// LimitKeepAlive: a connection closed because it stayed silent for 1.5
	// times limits.maxKeepAlive, which the broker enforced instead of the
	// longer (or zero) keep alive the client asked for.
	LimitKeepAlive = "keep_alive"
	// LimitNotServing: a connection refused because this member does not
	// serve MQTT clients now (RefuseConn: CONNACK 0x9C Use another server).
	LimitNotServing = "not_serving"
	// LimitConnections: a CONNECT beyond limits.maxConnections (CONNACK
	// 0x89 Server busy), or a connection closed at once because
	// limits.maxConnections plus a quarter and 16 are open (most of them
	// still without CONNECT).
	LimitConnections = "connections"
)

// knownLimits are exported at zero before the first refusal.
var knownLimits = []string{
	LimitUserProperties,
	LimitTopic,
	LimitSessions,
	LimitSessionsPerPrincipal,
	LimitRetained,
	LimitInboundQoS2,
	LimitKeepAlive,
	LimitConnections,
	LimitNotServing,
}

// LimitNames lists the known limits and any other counted one, sorted, so
// that every known limit is exported from the start.
func LimitNames(counted map[string]uint64) []string {
	out := append([]string(nil), knownLimits...)
	for l := range counted {
		if !slices.Contains(knownLimits, l) {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// refusals counts what the limits refused, with at most one log line per
// limit and second.
type refusals struct {
	mu  sync.Mutex
	n   map[string]uint64
	lim lograte.Limiter
}

func newRefusals() *refusals {
	r := &refusals{n: make(map[string]uint64), lim: lograte.Limiter{Every: time.Second}}
	for _, l := range knownLimits {
		r.n[l] = 0
	}
	return r
}

// add counts one refusal by limit and logs it (rate-limited) with attrs.
func (r *refusals) add(log *slog.Logger, limit string, attrs ...any) {
	r.count(limit)
	if ok, skipped := r.lim.Allow(limit, time.Now()); ok {
		log.Warn("limit refused a request", append([]any{"limit", limit, "unlogged_before", skipped}, attrs...)...)
	}
}

// count counts one refusal by limit, for a caller that logs it itself
// (a refused CONNECT: conn.refusal).
func (r *refusals) count(limit string) {
	r.mu.Lock()
	r.n[limit]++
	r.mu.Unlock()
}

func (r *refusals) snapshot() map[string]uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.n)
}

// addSessionLocked registers the session e of id and counts it for its
// principal. s.mu must be held.
func (s *Server) addSessionLocked(id string, e *sessionEntry) {
	s.sessions[id] = e
	s.listAddLocked(e)
	s.principals[e.principal]++
}

// sessionQuotaLocked decides whether c may create a new session under
// sessions.maxSessions and maxSessionsPerPrincipal (anonymous clients share
// the principal ""): Success, or QuotaExceeded (3.1.1: 0x03 Server
// unavailable), counted. Sessions restored at start are never dropped for
// these limits; while over them, only new sessions are refused. s.mu must
// be held.
func (s *Server) sessionQuotaLocked(c *conn) packet.ReasonCode {
	l := s.config().Sessions
	limit := ""
	switch {
	case l.MaxSessions > 0 && len(s.sessions) >= l.MaxSessions:
		limit = LimitSessions
	case l.MaxSessionsPerPrincipal > 0 && s.principals[c.principal] >= l.MaxSessionsPerPrincipal:
		limit = LimitSessionsPerPrincipal
	default:
		return packet.Success
	}
	c.refusal(limit)
	return packet.QuotaExceeded
}

// storeUsed is what counts against queues.maxStoreBytes: the stored and
// retained messages' Size, or what the store really occupies on disk
// (write-ahead log, tables, obsolete files, compactions in progress), the
// larger of the two.
func (s *Server) storeUsed() int64 {
	used := s.store.Stats().Bytes + s.router.RetainedBytes()
	if d := s.disk.sample(s); d != nil {
		used = max(used, d.Used)
	}
	return used
}

// storeFull reports whether storing m would exceed the global budget, or
// the volume has less free space than queues.minVolumeFreeBytes: new
// offline messages are then handled by the overflow policy, while
// acknowledgements and dequeues still commit, so draining works.
func (s *Server) storeFull(m *store.Message) bool {
	q := s.config().Queues
	if max := q.MaxStoreBytes; max > 0 && s.storeUsed()+m.Size() > max {
		return true
	}
	d := s.disk.sample(s)
	return d != nil && volumeShort(d.VolumeFree, d.VolumeSize, q.MinVolumeFreeBytes, d.Reserved)
}

// volumeShort reports whether the volume's free space is below the
// broker's reserve (minFree: queues.minVolumeFreeBytes, 0 for none) plus
// what the store keeps for itself (reserved); never on an unknown volume.
func volumeShort(free, size, minFree, reserved int64) bool {
	return size > 0 && (minFree > 0 || reserved > 0) && free < minFree+reserved
}

// diskSampler caches the store's DiskUsage for a second: it is read on
// every publish that stores messages, and asking the engine takes locks.
type diskSampler struct {
	last    atomic.Pointer[diskSample]
	refresh sync.Mutex
	errLog  time.Time // last error logged, under refresh
}

type diskSample struct {
	at time.Time
	u  store.DiskUsage
}

// sample returns the store's recent disk usage, nil when the store does
// not live on a volume (or has not answered yet).
func (d *diskSampler) sample(s *Server) *store.DiskUsage {
	dr, ok := s.store.(store.DiskReporter)
	if !ok {
		return nil
	}
	last := d.last.Load()
	if (last == nil || time.Since(last.at) >= diskSampleAge) && d.refresh.TryLock() {
		u, err := dr.DiskUsage()
		now := time.Now()
		if err == nil {
			last = &diskSample{at: now, u: u}
			d.last.Store(last)
		} else if now.Sub(d.errLog) >= time.Minute {
			d.errLog = now
			s.log.Warn("reading the store's disk usage", "err", err)
		}
		d.refresh.Unlock()
	}
	if last == nil {
		return nil
	}
	return &last.u
}

// diskSampleAge is how long a disk usage sample serves.
const diskSampleAge = time.Second

// storageStats reports the store budget for Stats.
func (s *Server) storageStats() StorageStats {
	q := s.config().Queues
	st := StorageStats{
		Budget: q.MaxStoreBytes, MinVolumeFree: q.MinVolumeFreeBytes,
		MessageBytes: s.store.Stats().Bytes + s.router.RetainedBytes(),
	}
	st.Used = st.MessageBytes
	if d := s.disk.sample(s); d != nil {
		st.DiskBytes, st.CompactionDebt, st.VolumeFree, st.VolumeSize = d.Used, d.CompactionDebt, d.VolumeFree, d.VolumeSize
		st.Reserved = d.Reserved
		st.Used = max(st.Used, d.Used)
	}
	st.Pressure = storagePressure(st)
	return st
}

// storagePressure decides the StoragePressure state: the store is at 95%
// of its budget or more, or the volume is below its free space reserve.
func storagePressure(st StorageStats) bool {
	if st.Budget > 0 && st.Used >= st.Budget/100*95 {
		return true
	}
	return volumeShort(st.VolumeFree, st.VolumeSize, st.MinVolumeFree, st.Reserved)
}

// retainAdmitted reports whether m (a retained publish) may be retained
// under limits.maxRetainedMessages, maxRetainedBytes and the store budget,
// counting a refusal. Deleting a retained message (empty payload) is always
// admitted.
func (s *Server) retainAdmitted(m *store.Message, log *slog.Logger, clientID string) bool {
	if len(m.Payload) == 0 {
		return true
	}
	cfg := s.config()
	size := m.Size()
	ok := s.router.RetainRoom(m.Topic, size, cfg.Limits.MaxRetainedMessages, cfg.Limits.MaxRetainedBytes)
	if max := cfg.Queues.MaxStoreBytes; ok && max > 0 && s.storeUsed()+size > max {
		ok = false
	}
	if !ok {
		s.refused.add(log, LimitRetained, "client", clientID, "topic", m.Topic)
	}
	return ok
}

// topicLimits are the topic limits of the configuration.
func topicLimits(cfg *config.Config) topic.Limits {
	return topic.Limits{MaxLen: cfg.Limits.MaxTopicLength, MaxLevels: cfg.Limits.MaxTopicLevels}
}

// topicAllowed reports whether a topic name or filter is within the topic
// limits, counting a refusal.
func (c *conn) topicAllowed(s string) bool {
	if err := topicLimits(c.srv.config()).Check(s); err != nil {
		c.srv.refused.add(c.log, LimitTopic, "client", c.clientID, "err", err)
		return false
	}
	return true
}

// decodeOptions are the decoder limits of the configuration.
func decodeOptions(cfg *config.Config) packet.DecodeOptions {
	return packet.DecodeOptions{
		MaxUserProperties:    cfg.Limits.MaxUserProperties,
		MaxUserPropertyBytes: cfg.Limits.MaxUserPropertyBytes,
	}
}
