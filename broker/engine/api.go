package engine

import (
	"log/slog"
	"time"

	"github.com/bollard-io/bollard/broker/auth"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
)

// Option configures a Server.
type Option func(*options)

type options struct {
	logger *slog.Logger
	clock  func() time.Time
	auth   auth.Authenticator
	authz  auth.Authorizer
}

// WithLogger sets the structured logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithClock injects the wall clock used for session and message expiry,
// will delays and persisted timestamps (default time.Now). Keep alive and
// write deadlines always use real time.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithAuthenticator replaces the users file and ACL of the configuration
// (also across reloads) with authn and authz (authz nil: everything is
// allowed).
func WithAuthenticator(authn auth.Authenticator, authz auth.Authorizer) Option {
	return func(o *options) { o.auth, o.authz = authn, authz }
}

// Drop reasons, the keys of Stats.Drops. Every message the broker discards
// without delivering it is counted under one of them (and logged).
const (
	// DropQueueFull: a session's queue limit dropped a message (policy
	// DropOldest or DropNewest).
	DropQueueFull = session.DropQueueFull
	// DropQuotaRejected: a session's queue was full under RejectPublish.
	DropQuotaRejected = session.DropQuotaRejected
	// DropStoreFull: the global store byte budget was reached.
	DropStoreFull = session.DropStoreFull
	// DropPolicyStoreFull: the sessions of a queue policy reached their
	// share of the store budget (storeBudgetPercent).
	DropPolicyStoreFull = session.DropPolicyStoreFull
	// DropExpired: the message expiry interval ran out while queued.
	DropExpired = session.DropExpired
	// DropSlowConsumer: a QoS 0 message met a full outbound buffer.
	DropSlowConsumer = session.DropSlowConsumer
	// DropTooLarge: the message exceeds the client's Maximum Packet Size.
	DropTooLarge = session.DropTooLarge
	// DropQoS0Offline: a QoS 0 message for an offline session (queueQoS0 off).
	DropQoS0Offline = session.DropQoS0Offline
	// DropSessionExpired: messages still queued when their session expired.
	DropSessionExpired = session.DropSessionExpired
	// DropNotAuthorized: a publish denied by the ACL.
	DropNotAuthorized = "not_authorized"
	// DropReadDenied: a message matched a subscription but the ACL does
	// not let the subscriber read its topic (a wildcard subscription is
	// granted when it could match readable topics; the rest is filtered).
	DropReadDenied = session.DropReadDenied
)

// Stats is a snapshot of the broker's counters for /metrics and /v1/status.
type Stats struct {
	// Connections is the number of open client connections (after CONNECT).
	Connections int64
	// SessionsOnline and SessionsOffline count sessions by connection state.
	SessionsOnline  int64
	SessionsOffline int64
	// QueuedMessages and QueuedBytes sum the queues of all sessions.
	QueuedMessages int64
	QueuedBytes    int64
	// TopQueues are the deepest session queues, deepest first: at most
	// the larger of StatusTopQueues and MetricsTopQueues, only non-empty
	// queues.
	TopQueues []QueueDepth
	// FullestQueue is the fill of the fullest session queue: the largest
	// messages/limit or bytes/limit of any session (0 without limits).
	FullestQueue float64
	// CensusAt is when the session figures above were counted.
	CensusAt time.Time
	// Retained is the number of retained messages.
	Retained int64
	// Drops counts discarded messages by reason (the Drop* constants).
	Drops map[string]uint64
	// RecentDrops counts them over the last DropWindow only.
	RecentDrops map[string]uint64
	// Refusals counts what each limit refused (the Limit* constants).
	Refusals map[string]uint64
	// ConnectionErrors counts the connections that ended in error, by
	// reason (the ConnErr* constants; every reason present).
	ConnectionErrors map[string]uint64
	// Storage is the store budget and the disk.
	Storage StorageStats
	// Policies describe the sessions of each queue policy together, in
	// the order of queues.policies, the default (sessions matching none)
	// last.
	Policies []PolicyStats
	// MessagesIn and MessagesOut count PUBLISH packets by QoS.
	MessagesIn  [3]uint64
	MessagesOut [3]uint64
	// BytesIn and BytesOut count bytes read from and written to clients.
	BytesIn  uint64
	BytesOut uint64
	// Commit is the latency of store commits that acknowledge publishes
	// (including the fsync in sync mode).
	Commit Histogram
	// Fsync is the latency of the store's write-ahead log fsyncs, timed
	// around each call (empty without a durable store).
	Fsync Histogram
	// WriteStalls is the store's write stalls (every commit stopped while
	// its flushes or compactions caught up); nil when the store does not
	// report them (memory).
	WriteStalls *store.StallSnapshot
	// LSM is the shape of the store's LSM tree; nil when the store has
	// none or it could not be read.
	LSM *store.LSMStats
	// ConfigGeneration is the generation of the applied configuration.
	ConfigGeneration int64
	// MetricsTopQueues is admin.metricsTopQueues: how many of TopQueues
	// /metrics exports with their client ID.
	MetricsTopQueues int
	// ConnectionPanics counts panics recovered in connections (each closed
	// that connection only).
	ConnectionPanics uint64
	// StoreCommitErrors counts the store commits that failed (a publish,
	// a subscription, a session or delivery state not stored).
	StoreCommitErrors uint64
	// LoginRefusedBusy counts CONNECTs refused because no password check
	// slot freed up within login.checkWait; LoginRefusedBackoff those
	// refused because their source address was backing off after failed
	// logins; LoginFailures the failed password checks.
	LoginRefusedBusy    uint64
	LoginRefusedBackoff uint64
	LoginFailures       uint64
	// LoginChecksInFlight is the number of password checks running;
	// LoginBackoffAddresses the source addresses remembered for back-off.
	LoginChecksInFlight   int64
	LoginBackoffAddresses int64
}

// StorageStats describe the store budget (queues.maxStoreBytes) and what
// the store occupies, for /metrics and /v1/status. Bytes throughout.
type StorageStats struct {
	// Used is what counts against the budget: the larger of MessageBytes
	// and DiskBytes.
	Used int64 `json:"usedBytes"`
	// Budget is queues.maxStoreBytes; 0 means none.
	Budget int64 `json:"budgetBytes"`
	// MessageBytes is the Size of the stored and retained messages.
	MessageBytes int64 `json:"messageBytes"`
	// DiskBytes is what the store's files occupy, as the storage engine
	// counts them (WAL, tables, obsolete files, compactions in progress);
	// CompactionDebt is its estimate of bytes still to compact. 0 without
	// a durable store.
	DiskBytes      int64 `json:"diskBytes"`
	CompactionDebt int64 `json:"compactionDebtBytes"`
	// VolumeFree and VolumeSize describe the store's volume (0: unknown);
	// MinVolumeFree is queues.minVolumeFreeBytes.
	VolumeFree    int64 `json:"volumeFreeBytes"`
	VolumeSize    int64 `json:"volumeSizeBytes"`
	MinVolumeFree int64 `json:"minVolumeFreeBytes"`
	// Reserved is free space the store keeps for itself on top of
	// MinVolumeFree: on a cluster member, room for its next Raft snapshot
	// (a copy of the store); 0 on a single node.
	Reserved int64 `json:"reservedBytes"`
	// Pressure is true at 95% of the budget or more, or with the volume
	// below MinVolumeFree + Reserved: new messages for offline sessions
	// are (or are about to be) refused by the overflow policy.
	Pressure bool `json:"pressure"`
}

// Histogram is latency histogram data in the Prometheus layout.
type Histogram struct {
	// Buckets maps an upper bound in seconds to the cumulative count of
	// observations at or below it.
	Buckets map[float64]uint64
	// Count and Sum (seconds) cover all observations.
	Count uint64
	Sum   float64
}

// SessionInfo describes one session for /v1/sessions.
type SessionInfo struct {
	ClientID        string    `json:"clientID"`
	Principal       string    `json:"principal"`
	Online          bool      `json:"online"`
	ProtocolVersion byte      `json:"protocolVersion"`
	Persistent      bool      `json:"persistent"`
	ExpiryInterval  uint32    `json:"expiryIntervalSeconds"`
	ExpiresAt       time.Time `json:"expiresAt,omitzero"`
	QueuedMessages  int64     `json:"queuedMessages"`
	QueuedBytes     int64     `json:"queuedBytes"`
	Inflight        int       `json:"inflight"`
	Subscriptions   int       `json:"subscriptions"`
	// Policy names the queue policy whose limits the session has now
	// ("default": none of queues.policies selects it).
	Policy string `json:"policy"`
}
