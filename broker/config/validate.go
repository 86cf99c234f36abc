package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bollard-io/bollard/broker/access"
)

// MaxPacketSizeLimit is the largest packet MQTT can express (remaining
// length 268,435,455 plus a 5-byte fixed header).
const MaxPacketSizeLimit = 268435455 + 5

// maxExpiry is the largest MQTT 5.0 session expiry interval, in seconds
// (0xFFFFFFFF means "never" in the protocol; we always grant a finite one).
const maxExpiry = Duration(math.MaxUint32-1) * Duration(time.Second)

// FieldError is a validation error about one field, named by its path in
// the file (for example "queues.maxQueuedMessages").
type FieldError struct {
	Field string
	Msg   string
	// Err is the underlying error, when another package found the problem
	// (for example access.ErrRule for an ACL rule).
	Err error
}

func (e *FieldError) Error() string { return "config: " + e.Field + ": " + e.Msg }

// Unwrap returns Err.
func (e *FieldError) Unwrap() error { return e.Err }

// Validate checks c and returns every problem found, each a *FieldError,
// joined with errors.Join.
func (c *Config) Validate() error {
	var v validator
	c.validateListeners(&v)
	c.validateStorage(&v)
	c.validateSessions(&v)
	c.validateQueues(&v)
	c.validateLimits(&v)
	c.validateAuth(&v)
	c.validateLogin(&v)
	c.validateCluster(&v)
	v.check(slices.Contains(logLevels, c.LogLevel), "logLevel", "must be one of %s, got %q", strings.Join(logLevels, ", "), c.LogLevel)
	v.check(c.Procs == ProcsAuto || c.Procs == ProcsAll, "procs", "must be %s or %s, got %q", ProcsAuto, ProcsAll, c.Procs)
	v.check(c.DrainTimeout > 0, "drainTimeout", "must be positive, got %s", c.DrainTimeout)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) check(ok bool, field, format string, args ...any) {
	if !ok {
		v.errs = append(v.errs, &FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
}

// err records a problem found by another package's check; its message is
// kept without the package's prefix, since FieldError adds "config: ".
func (v *validator) err(field string, err error) {
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), access.ErrRule.Error()+": ")
		v.errs = append(v.errs, &FieldError{Field: field, Msg: msg, Err: err})
	}
}

func (v *validator) address(field, addr string) {
	if addr == "" {
		return
	}
	_, port, err := net.SplitHostPort(addr)
	v.check(err == nil && port != "", field, "must be host:port, got %q", addr)
}

func (c *Config) validateListeners(v *validator) {
	l := c.Listeners
	v.check(l.MQTT.Address != "" || l.TLS.Address != "" || l.WebSocket.Address != "",
		"listeners", "at least one of mqtt, tls or websocket must have an address")
	v.address("listeners.mqtt.address", l.MQTT.Address)
	v.address("listeners.tls.address", l.TLS.Address)
	v.address("listeners.websocket.address", l.WebSocket.Address)
	v.address("admin.address", c.Admin.Address)
	v.check(c.Admin.MetricsTopQueues >= 0 && c.Admin.MetricsTopQueues <= MaxMetricsTopQueues, "admin.metricsTopQueues",
		"must be between 0 (none) and %d, got %d", MaxMetricsTopQueues, c.Admin.MetricsTopQueues)
	if l.TLS.Address != "" {
		v.check(l.TLS.CertFile != "", "listeners.tls.certFile", "is required when the TLS listener is enabled")
		v.check(l.TLS.KeyFile != "", "listeners.tls.keyFile", "is required when the TLS listener is enabled")
	}
	v.check(!l.TLS.RequireClientCert || l.TLS.ClientCAFile != "", "listeners.tls.clientCAFile",
		"is required when requireClientCert is true")
	v.check(strings.HasPrefix(l.WebSocket.Path, "/"), "listeners.websocket.path", "must start with /, got %q", l.WebSocket.Path)
}

func (c *Config) validateStorage(v *validator) {
	modes := []string{DurabilitySync, DurabilityInterval, DurabilityNone}
	v.check(slices.Contains(modes, c.Durability.Mode), "durability.mode", "must be one of %s, got %q",
		strings.Join(modes, ", "), c.Durability.Mode)
	v.check(c.Durability.Mode != DurabilityInterval || c.Durability.Interval > 0,
		"durability.interval", "must be positive in interval mode, got %s", c.Durability.Interval)
	v.check(c.Durability.Mode == DurabilityNone || c.DataDir != "", "dataDir", "is required unless durability.mode is none")
}

func (c *Config) validateSessions(v *validator) {
	s := c.Sessions
	v.check(s.MaxSessionExpiry >= 0 && s.MaxSessionExpiry <= maxExpiry, "sessions.maxSessionExpiry",
		"must be between 0 and %s, got %s", maxExpiry, s.MaxSessionExpiry)
	v.check(s.MaxSessionExpiry%Duration(time.Second) == 0, "sessions.maxSessionExpiry", "must be whole seconds, got %s", s.MaxSessionExpiry)
	v.check(s.DefaultSessionExpiry > 0, "sessions.defaultSessionExpiry",
		"must be positive: 3.1.1 persistent sessions need a finite expiry, got %s", s.DefaultSessionExpiry)
	v.check(s.MaxSessions >= 0, "sessions.maxSessions", "must be 0 (no limit) or positive, got %d", s.MaxSessions)
	v.check(s.MaxSessionsPerPrincipal >= 0, "sessions.maxSessionsPerPrincipal", "must be 0 (no limit) or positive, got %d", s.MaxSessionsPerPrincipal)
	v.check(s.DefaultSessionExpiry <= s.MaxSessionExpiry, "sessions.defaultSessionExpiry",
		"must not exceed sessions.maxSessionExpiry (%s), got %s", s.MaxSessionExpiry, s.DefaultSessionExpiry)
}

func (c *Config) validateQueues(v *validator) {
	q := c.Queues
	v.check(q.MaxQueuedMessages >= 1, "queues.maxQueuedMessages", "must be at least 1, got %d", q.MaxQueuedMessages)
	v.check(q.MaxQueuedBytes >= 1, "queues.maxQueuedBytes", "must be at least 1, got %d", q.MaxQueuedBytes)
	v.check(validOverflow(q.OverflowPolicy), "queues.overflowPolicy", "must be one of %s, got %q",
		strings.Join(overflowPolicies, ", "), q.OverflowPolicy)
	v.check(q.MinVolumeFreeBytes >= 0, "queues.minVolumeFreeBytes", "must be 0 (none) or positive, got %d", q.MinVolumeFreeBytes)
	v.check(q.MaxStoreBytes >= 0, "queues.maxStoreBytes", "must be 0 (no limit) or positive, got %d", q.MaxStoreBytes)
	c.validatePolicies(v)
}

func (c *Config) validateLimits(v *validator) {
	l := c.Limits
	v.check(l.MaxConnections >= 0, "limits.maxConnections", "must be 0 (no limit) or positive, got %d", l.MaxConnections)
	v.check(l.MaxPacketSize >= 128 && l.MaxPacketSize <= MaxPacketSizeLimit, "limits.maxPacketSize",
		"must be between 128 and %d, got %d", MaxPacketSizeLimit, l.MaxPacketSize)
	v.check(l.MaxInflight >= 1, "limits.maxInflight", "must be at least 1, got %d", l.MaxInflight)
	v.check(l.MaxSubscriptionsPerClient >= 1, "limits.maxSubscriptionsPerClient", "must be at least 1, got %d", l.MaxSubscriptionsPerClient)
	// [MQTT-3.1.3-5] servers must accept client identifiers of 1 to 23 bytes.
	v.check(l.MaxClientIDLength >= 23 && l.MaxClientIDLength <= 65535, "limits.maxClientIDLength",
		"must be between 23 and 65535, got %d", l.MaxClientIDLength)
	v.check(l.ConnectTimeout > 0, "limits.connectTimeout", "must be positive, got %s", l.ConnectTimeout)
	v.check(l.MaxKeepAlive >= 0 && l.MaxKeepAlive <= Duration(65535*time.Second), "limits.maxKeepAlive",
		"must be between 0 (no cap) and 65535s, got %s", l.MaxKeepAlive)
	v.check(l.MemoryLimit == 0 || l.MemoryLimit >= 16<<20, "limits.memoryLimit", "must be 0 (none) or at least 16 MiB, got %d", l.MemoryLimit)
	v.check(l.MaxUserProperties >= 1 && l.MaxUserProperties <= 65535, "limits.maxUserProperties",
		"must be between 1 and 65535, got %d", l.MaxUserProperties)
	v.check(l.MaxUserPropertyBytes >= 64, "limits.maxUserPropertyBytes", "must be at least 64, got %d", l.MaxUserPropertyBytes)
	v.check(l.MaxTopicLength >= 16 && l.MaxTopicLength <= 65535, "limits.maxTopicLength",
		"must be between 16 and 65535, got %d", l.MaxTopicLength)
	v.check(l.MaxTopicLevels >= 1 && l.MaxTopicLevels <= 65535, "limits.maxTopicLevels",
		"must be between 1 and 65535, got %d", l.MaxTopicLevels)
	v.check(l.MaxRetainedMessages >= 0, "limits.maxRetainedMessages", "must be 0 (no limit) or positive, got %d", l.MaxRetainedMessages)
	v.check(l.MaxRetainedBytes >= 0, "limits.maxRetainedBytes", "must be 0 (no limit) or positive, got %d", l.MaxRetainedBytes)
	v.check(l.OutboundBufferBytes >= 4096, "limits.outboundBufferBytes", "must be at least 4096, got %d", l.OutboundBufferBytes)
}

// validateAuth checks every ACL rule with broker/access, the one
// definition of the rule syntax, naming the field of each problem.
func (c *Config) validateAuth(v *validator) {
	for i, r := range c.Auth.ACL {
		f := fmt.Sprintf("auth.acl[%d]", i)
		v.err(f+".user", access.CheckUser(r.User))
		v.err(f+".topic", access.CheckTopic(r.User, r.Topic))
		v.err(f+".access", access.CheckKind(r.Access))
	}
}

// AnonymousAllowed reports whether clients without credentials may connect:
// Auth.AllowAnonymous when set; otherwise only when every enabled listener
// is on a loopback address and no users file is configured.
func (c *Config) AnonymousAllowed() bool {
	if c.Auth.AllowAnonymous != nil {
		return *c.Auth.AllowAnonymous
	}
	if c.Auth.UsersFile != "" {
		return false
	}
	for _, a := range []string{c.Listeners.MQTT.Address, c.Listeners.TLS.Address, c.Listeners.WebSocket.Address} {
		if a != "" && !isLoopback(a) {
			return false
		}
	}
	return true
}

// AdminOnLoopback reports whether the admin endpoint listens on a loopback
// address only. Without admin.tokenFile, /v1/* is served only then.
func (c *Config) AdminOnLoopback() bool {
	return c.Admin.Address != "" && isLoopback(c.Admin.Address)
}

func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// MaxClusterMembers bounds cluster.members: replicas are 1, 3 or 5, with
// room for one member joining or leaving during a change. The recovery
// tool and the operator bound members with it too.
const MaxClusterMembers = 7

// maxHandoverHeld bounds cluster.handoverMaxHeld: every held CONNECT is an
// open socket and a goroutine.
const maxHandoverHeld = 100_000

func (c *Config) validateCluster(v *validator) {
	cl := c.Cluster
	// The handover bounds are checked with or without a member ID: a
	// Kubernetes member's file has none (its flags add it), and they are
	// unused by a single node.
	v.check(cl.HandoverHoldFor == 0 || (cl.HandoverHoldFor.D() >= 100*time.Millisecond && cl.HandoverHoldFor.D() <= time.Minute),
		"cluster.handoverHoldFor", "must be 0 (the default) or between 100ms and 1m, got %s", cl.HandoverHoldFor)
	v.check(cl.HandoverMaxHeld >= 0 && cl.HandoverMaxHeld <= maxHandoverHeld, "cluster.handoverMaxHeld",
		"must be between 0 (the default) and %d, got %d", maxHandoverHeld, cl.HandoverMaxHeld)
	if !cl.Enabled() {
		v.check(cl.Bind == "" && len(cl.Members) == 0 && !cl.Bootstrap && cl.SecretFile == "" && len(cl.DialAddresses) == 0, "cluster.memberID",
			"is required when any other cluster field is set")
		return
	}
	v.check(validMemberID(cl.MemberID), "cluster.memberID", "must be 1-63 characters of a-z, 0-9, '-' and '.', got %q", cl.MemberID)
	v.check(c.Durability.Mode != DurabilityNone, "durability.mode", "must be sync or interval in a cluster: members replicate to their volumes")
	v.check(cl.Bind != "", "cluster.bind", "is required: the replication listen address")
	v.address("cluster.bind", cl.Bind)
	v.check(cl.SecretFile != "", "cluster.secretFile", "is required: replication connections must be authenticated")
	v.check(len(cl.Members) <= MaxClusterMembers, "cluster.members", "must have at most %d members, got %d", MaxClusterMembers, len(cl.Members))
	seen := map[string]bool{}
	self := false
	for i, m := range cl.Members {
		f := fmt.Sprintf("cluster.members[%d]", i)
		v.check(validMemberID(m.ID), f+".id", "must be 1-63 characters of a-z, 0-9, '-' and '.', got %q", m.ID)
		v.check(!seen[m.ID], f+".id", "%q is listed twice", m.ID)
		seen[m.ID] = true
		v.check(validHostPort(m.RaftAddress), f+".raftAddress", "must be host:port, got %q", m.RaftAddress)
		v.check(m.ClientAddress == "" || validHostPort(m.ClientAddress), f+".clientAddress", "must be host:port, got %q", m.ClientAddress)
		self = self || m.ID == cl.MemberID
	}
	v.check(self, "cluster.members", "must include this member (%q)", cl.MemberID)
	v.check(len(cl.DialAddresses) <= MaxClusterMembers, "cluster.dialAddresses", "must have at most %d entries, got %d", MaxClusterMembers, len(cl.DialAddresses))
	for id, a := range cl.DialAddresses {
		f := "cluster.dialAddresses[" + id + "]"
		// An ID not (yet) among the members serves a member added at
		// run time through the leader.
		v.check(validMemberID(id), f, "must name a member ID: 1-63 characters of a-z, 0-9, '-' and '.'")
		v.check(validHostPort(a), f, "must be host:port, got %q", a)
	}
	timeout := func(field string, d Duration, lo time.Duration) {
		v.check(d == 0 || (d.D() >= lo && d.D() <= time.Minute), field, "must be 0 (the default) or between %s and 1m, got %s", lo, d)
	}
	timeout("cluster.heartbeatTimeout", cl.HeartbeatTimeout, 50*time.Millisecond)
	timeout("cluster.electionTimeout", cl.ElectionTimeout, 50*time.Millisecond)
	timeout("cluster.leaderLeaseTimeout", cl.LeaderLeaseTimeout, 10*time.Millisecond)
	heartbeat, _, lease := cl.Timeouts()
	v.check(lease <= heartbeat, "cluster.leaderLeaseTimeout", "must not exceed the heartbeat timeout (%s), got %s", Duration(heartbeat), cl.LeaderLeaseTimeout)
	v.check(cl.SnapshotEvery >= 0 && cl.SnapshotEvery <= 10_000_000, "cluster.snapshotEvery", "must be between 0 (the default) and 10000000, got %d", cl.SnapshotEvery)
	v.check(cl.TrailingLogs >= 0 && cl.TrailingLogs <= 10_000_000, "cluster.trailingLogs", "must be between 0 (the default) and 10000000, got %d", cl.TrailingLogs)
}

// CheckClusterMember checks a member the way cluster.members entries are
// checked; the admin endpoint applies it to members added at run time.
func CheckClusterMember(m ClusterMember) error {
	var v validator
	v.check(validMemberID(m.ID), "id", "must be 1-63 characters of a-z, 0-9, '-' and '.', got %q", m.ID)
	v.check(validHostPort(m.RaftAddress), "raftAddress", "must be host:port, got %q", m.RaftAddress)
	v.check(m.ClientAddress == "" || validHostPort(m.ClientAddress), "clientAddress", "must be host:port, got %q", m.ClientAddress)
	return errors.Join(v.errs...)
}

func validMemberID(id string) bool {
	if id == "" || len(id) > 63 {
		return false
	}
	for _, r := range id {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') && r != '-' && r != '.' {
			return false
		}
	}
	return true
}

// validHostPort reports whether a is an address to dial: host and port.
func validHostPort(a string) bool {
	host, port, err := net.SplitHostPort(a)
	if err != nil || host == "" || len(a) > 255 {
		return false
	}
	p, err := strconv.Atoi(port)
	return err == nil && p > 0 && p < 65536
}
