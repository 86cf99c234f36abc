package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/bollard-io/bollard/broker/access"
)

// Durability modes. See docs/durability.md for the contract of each.
const (
	// DurabilitySync acknowledges a QoS 1/2 publish only after it is fsynced.
	DurabilitySync = "sync"
	// DurabilityInterval fsyncs every Durability.Interval; a crash may lose
	// acknowledged messages from the last interval.
	DurabilityInterval = "interval"
	// DurabilityNone keeps everything in memory; nothing survives a restart.
	DurabilityNone = "none"
)

// Overflow policies for a full offline queue.
const (
	// OverflowDropOldest drops the oldest queued message to make room.
	OverflowDropOldest = "DropOldest"
	// OverflowDropNewest drops the message being queued.
	OverflowDropNewest = "DropNewest"
	// OverflowRejectPublish refuses the publish: MQTT 5.0 publishers get
	// reason code 0x97 (Quota exceeded); 3.1.1 publishers cannot be told,
	// so the message is dropped for that session and counted.
	OverflowRejectPublish = "RejectPublish"
)

// Values of Procs.
const (
	ProcsAuto = "auto"
	ProcsAll  = "all"
)

// Log levels accepted by LogLevel.
var logLevels = []string{"debug", "info", "warn", "error"}

// Config is the broker's configuration file. Every field has a default
// (see Default); a file only needs the fields it changes.
//
// The `reload` tag classifies each leaf field: "hot" fields are applied by a
// running broker when the file changes; "restart" fields take effect on the
// next start. The operator uses the same classification (RestartHash) to
// decide whether a change must roll the pod.
type Config struct {
	// ConfigGeneration is an opaque counter set by whoever writes the file
	// (the operator sets the MQTTBroker's metadata.generation). The broker
	// reports the generation it applied on /v1/status.
	ConfigGeneration int64 `yaml:"configGeneration" json:"configGeneration" reload:"hot"`
	// Listeners are the client-facing endpoints.
	Listeners Listeners `yaml:"listeners" json:"listeners"`
	// Admin is the HTTP endpoint for health, readiness, metrics and inspection.
	Admin Admin `yaml:"admin" json:"admin"`
	// DataDir holds the durable store. Unused when Durability.Mode is none.
	DataDir string `yaml:"dataDir" json:"dataDir" reload:"restart"`
	// Durability selects when acknowledged messages reach the disk.
	Durability Durability `yaml:"durability" json:"durability"`
	// Sessions caps session lifetimes.
	Sessions Sessions `yaml:"sessions" json:"sessions"`
	// Queues bounds the offline queue of every persistent session.
	Queues Queues `yaml:"queues" json:"queues"`
	// Limits protect the broker from abusive or broken clients.
	Limits Limits `yaml:"limits" json:"limits"`
	// Auth configures authentication and topic ACLs.
	Auth Auth `yaml:"auth" json:"auth"`
	// Login bounds the CPU spent on password checks of CONNECT packets.
	Login Login `yaml:"login" json:"login"`
	// LogLevel is one of debug, info, warn, error.
	LogLevel string `yaml:"logLevel" json:"logLevel" reload:"hot"`
	// Procs sets how many threads run Go code at once (the runtime's
	// GOMAXPROCS). auto: one while the broker uses little CPU (a few
	// clients with one message in flight each, where a second thread
	// costs a wake-up on every message and gains nothing), all the CPUs
	// the process may use (the runtime's default, which follows the
	// container's CPU limit) as soon as it uses more. all: always all of
	// them. GOMAXPROCS in the environment overrides both.
	Procs string `yaml:"procs" json:"procs" reload:"hot"`
	// DrainTimeout bounds a graceful shutdown: after it, remaining
	// connections are closed and the store is flushed and closed.
	DrainTimeout Duration `yaml:"drainTimeout" json:"drainTimeout" reload:"hot"`
	// Cluster makes the broker one member of a replicated cluster; with no
	// memberID it is a single node (see docs/durability.md, "Replication").
	Cluster Cluster `yaml:"cluster,omitempty" json:"cluster,omitzero"`
}

// Cluster configures replication: every member keeps the whole state on
// its own volume, the Raft log carries every change, and only the leader
// serves MQTT clients. Followers refuse MQTT 5.0 clients with CONNACK 0x9C
// (Use another server) naming the leader's clientAddress, and 3.1.1
// clients with 0x03 (Server unavailable); their /readyz fails.
type Cluster struct {
	// MemberID is this member's identity among members (in Kubernetes the
	// pod name). Empty: a single node, no replication.
	MemberID string `yaml:"memberID,omitempty" json:"memberID,omitempty" reload:"restart"`
	// Bind is the replication listen address (host:port).
	Bind string `yaml:"bind,omitempty" json:"bind,omitempty" reload:"restart"`
	// Members lists the members this one knows, itself included: the
	// initial voters when bootstrapping, and where clients reach each
	// possible leader.
	Members []ClusterMember `yaml:"members,omitempty" json:"members,omitempty" reload:"restart"`
	// Bootstrap lets a member with no replicated state form the cluster
	// from Members (set it on every initial member: they agree). A member
	// without it waits to be added by the leader (POST /v1/cluster/members).
	Bootstrap bool `yaml:"bootstrap,omitempty" json:"bootstrap,omitempty" reload:"restart"`
	// SecretFile holds the shared secret (at least 32 bytes) members prove
	// to each other on every replication connection.
	SecretFile string `yaml:"secretFile,omitempty" json:"secretFile,omitempty" reload:"restart"`
	// HeartbeatTimeout: a follower that hears nothing from the leader for
	// between one and two of it starts an election (its peers refuse it
	// while they still hear from a leader). Failover after a leader dies
	// takes one to two of it, sometimes an election round more. 0: 500ms.
	HeartbeatTimeout Duration `yaml:"heartbeatTimeout,omitempty" json:"heartbeatTimeout,omitempty" reload:"restart"`
	// ElectionTimeout bounds one election round (a candidate that does
	// not win within one to two of it tries again). 0: 500ms.
	ElectionTimeout Duration `yaml:"electionTimeout,omitempty" json:"electionTimeout,omitempty" reload:"restart"`
	// LeaderLeaseTimeout: a leader that hears from no majority this long
	// steps down and disconnects its clients. At most heartbeatTimeout;
	// a short lease makes a loaded leader step down without cause. 0:
	// 500ms, or heartbeatTimeout when that is shorter.
	LeaderLeaseTimeout Duration `yaml:"leaderLeaseTimeout,omitempty" json:"leaderLeaseTimeout,omitempty" reload:"restart"`
	// SnapshotEvery is the number of log entries between snapshots.
	SnapshotEvery int `yaml:"snapshotEvery,omitempty" json:"snapshotEvery,omitempty" reload:"restart"`
	// TrailingLogs is the number of log entries kept after a snapshot: a
	// member that fell fewer entries behind catches up from the log, one
	// further behind is sent the whole snapshot. 0: 10240.
	TrailingLogs int `yaml:"trailingLogs,omitempty" json:"trailingLogs,omitempty" reload:"restart"`
	// DialAddresses maps member IDs to the address this member dials them
	// at, when it differs from their raftAddress (a NAT, or the
	// fault-injecting proxies of the tests). The cluster configuration
	// keeps the raftAddress. An ID that is not among members applies to
	// a member of that ID added later through the leader (the member is
	// recognised by its replication address in the Raft configuration).
	DialAddresses map[string]string `yaml:"dialAddresses,omitempty" json:"dialAddresses,omitempty" reload:"restart"`
	// HandoverHoldFor is how long a member about to lead (the successor
	// of a readiness handover, see docs/operations.md) holds a CONNECT
	// until it leads; past it the client is refused (5.0: 0x9C with the
	// leader's reference) as a follower refuses it, and reconnects.
	// Between 100ms and 1m; 0: 5s. Unused by a single node.
	HandoverHoldFor Duration `yaml:"handoverHoldFor,omitempty" json:"handoverHoldFor,omitempty" reload:"hot"`
	// HandoverMaxHeld is how many CONNECTs a successor holds at once (each
	// is an open socket and a goroutine until served); more are refused at
	// once. Size it to the clients that reconnect within handoverHoldFor of
	// a leadership change. Between 1 and 100000; 0: 4096. Unused by a single
	// node.
	HandoverMaxHeld int `yaml:"handoverMaxHeld,omitempty" json:"handoverMaxHeld,omitempty" reload:"hot"`
}

// Defaults of the cluster timeouts, taken by a zero field. Measured on a
// loaded 2-core machine (test/cluster): leaders killed with SIGKILL are
// replaced in under 2 s, and a steady loaded run sees no election.
const (
	DefaultHeartbeatTimeout   = 500 * time.Millisecond
	DefaultElectionTimeout    = 500 * time.Millisecond
	DefaultLeaderLeaseTimeout = 500 * time.Millisecond
)

// Defaults of the readiness handover's bounds (cluster.handoverHoldFor,
// cluster.handoverMaxHeld), taken by a zero field.
const (
	DefaultHandoverHoldFor = 5 * time.Second
	DefaultHandoverMaxHeld = 4096
)

// Handover returns the handover bounds in effect: a zero field takes its
// default.
func (c Cluster) Handover() (holdFor time.Duration, maxHeld int) {
	holdFor, maxHeld = c.HandoverHoldFor.D(), c.HandoverMaxHeld
	if holdFor <= 0 {
		holdFor = DefaultHandoverHoldFor
	}
	if maxHeld <= 0 {
		maxHeld = DefaultHandoverMaxHeld
	}
	return holdFor, maxHeld
}

// ClusterMember is one member of a cluster.
type ClusterMember struct {
	// ID is the member's memberID.
	ID string `yaml:"id" json:"id"`
	// RaftAddress is where the other members reach its replication port.
	RaftAddress string `yaml:"raftAddress" json:"raftAddress"`
	// ClientAddress is where MQTT clients reach it (host:port), named in
	// the CONNACK of clients a follower refuses while it leads.
	ClientAddress string `yaml:"clientAddress,omitempty" json:"clientAddress,omitempty"`
}

// Timeouts returns the cluster timeouts in effect: a zero field takes its
// default, and an unset lease is at most the heartbeat timeout.
func (c Cluster) Timeouts() (heartbeat, election, lease time.Duration) {
	heartbeat, election, lease = c.HeartbeatTimeout.D(), c.ElectionTimeout.D(), c.LeaderLeaseTimeout.D()
	if heartbeat <= 0 {
		heartbeat = DefaultHeartbeatTimeout
	}
	if election <= 0 {
		election = DefaultElectionTimeout
	}
	if lease <= 0 {
		lease = min(DefaultLeaderLeaseTimeout, heartbeat)
	}
	return heartbeat, election, lease
}

// Enabled reports whether the broker runs as a cluster member.
func (c Cluster) Enabled() bool { return c.MemberID != "" }

// Listeners are the client-facing endpoints. An empty address disables a
// listener; at least one must be enabled.
type Listeners struct {
	// MQTT is plain MQTT over TCP.
	MQTT TCPListener `yaml:"mqtt" json:"mqtt"`
	// TLS is MQTT over TLS.
	TLS TLSListener `yaml:"tls" json:"tls"`
	// WebSocket is MQTT over WebSocket (subprotocol "mqtt").
	WebSocket WebSocketListener `yaml:"websocket" json:"websocket"`
}

// TCPListener is a plain TCP listener.
type TCPListener struct {
	// Address is host:port; empty disables the listener.
	Address string `yaml:"address" json:"address" reload:"restart"`
}

// TLSListener is a TLS listener.
type TLSListener struct {
	// Address is host:port; empty disables the listener.
	Address string `yaml:"address" json:"address" reload:"restart"`
	// CertFile and KeyFile are PEM files holding the server certificate
	// chain and its private key.
	CertFile string `yaml:"certFile" json:"certFile" reload:"restart"`
	KeyFile  string `yaml:"keyFile" json:"keyFile" reload:"restart"`
	// ClientCAFile, when set, makes the listener verify client certificates
	// against these CAs.
	ClientCAFile string `yaml:"clientCAFile" json:"clientCAFile" reload:"restart"`
	// RequireClientCert refuses clients without a verified certificate.
	RequireClientCert bool `yaml:"requireClientCert" json:"requireClientCert" reload:"restart"`
}

// WebSocketListener serves MQTT over WebSocket.
type WebSocketListener struct {
	// Address is host:port; empty disables the listener.
	Address string `yaml:"address" json:"address" reload:"restart"`
	// Path is the HTTP path of the WebSocket endpoint.
	Path string `yaml:"path" json:"path" reload:"restart"`
}

// Admin is the admin HTTP endpoint.
type Admin struct {
	// Address is host:port; empty disables the endpoint.
	Address string `yaml:"address" json:"address" reload:"restart"`
	// TokenFile holds the bearer token that every /v1/* request must
	// present (`Authorization: Bearer <token>`); /healthz, /readyz and
	// /metrics stay open. The token is the file's content without
	// surrounding whitespace, at least 16 bytes; the file is re-read when
	// it changes (a rotated Secret applies without a restart). When
	// empty, /v1/* is served without a token only if the admin address
	// is on loopback, and refused (403) otherwise.
	TokenFile string `yaml:"tokenFile" json:"tokenFile" reload:"restart"`
	// MetricsTopQueues exports the N deepest session queues on /metrics
	// as bollard_queue_top_messages and bollard_queue_top_bytes, labelled
	// with their client_id (at most MaxMetricsTopQueues; a client that
	// leaves the N deepest loses its series). 0, the default, exports
	// none: /metrics needs no token, and this puts client IDs on it (see
	// docs/security.md). /v1/status always lists the 10 deepest queues.
	MetricsTopQueues int `yaml:"metricsTopQueues" json:"metricsTopQueues" reload:"hot"`
}

// MaxMetricsTopQueues bounds Admin.MetricsTopQueues: the series of
// /metrics stay few whatever the number of sessions.
const MaxMetricsTopQueues = 100

// Durability selects when acknowledged messages reach the disk.
type Durability struct {
	// Mode is sync, interval or none.
	Mode string `yaml:"mode" json:"mode" reload:"restart"`
	// Interval is the fsync period in interval mode (the loss window).
	Interval Duration `yaml:"interval" json:"interval" reload:"restart"`
	// EarlyDelivery lets a QoS 1 message go out to an online persistent
	// subscriber while its publish is still on its way to the disk (or, in
	// a cluster, to a majority); the publisher's PUBACK still waits. On by
	// default. Off, a subscriber receives only messages already stored, at
	// the price of one fsync (or replication round) on the delivery's
	// latency: a crash can then no longer leave a subscriber with a
	// message that was never stored (docs/durability.md, "Delivery does
	// not wait for the fsync").
	EarlyDelivery *bool `yaml:"earlyDelivery,omitempty" json:"earlyDelivery,omitempty" reload:"hot"`
}

// Early reports whether early delivery is on (EarlyDelivery, default true).
func (d Durability) Early() bool { return d.EarlyDelivery == nil || *d.EarlyDelivery }

// Sessions caps session lifetimes.
type Sessions struct {
	// MaxSessionExpiry caps the session expiry interval a 5.0 client may ask
	// for; the granted value is returned in CONNACK.
	MaxSessionExpiry Duration `yaml:"maxSessionExpiry" json:"maxSessionExpiry" reload:"hot"`
	// DefaultSessionExpiry is the expiry of a 3.1.1 persistent session
	// (cleanSession=0), which has no expiry of its own in the protocol.
	DefaultSessionExpiry Duration `yaml:"defaultSessionExpiry" json:"defaultSessionExpiry" reload:"hot"`
	// AllowTakeoverByOtherPrincipal lets a client resume a session created
	// by another authenticated principal. Off by default: such a client is
	// refused with 0x87 Not authorized.
	AllowTakeoverByOtherPrincipal bool `yaml:"allowTakeoverByOtherPrincipal" json:"allowTakeoverByOtherPrincipal" reload:"hot"`
	// MaxSessions caps the sessions the broker holds, online and offline
	// persistent ones together; 0 means no limit. A CONNECT that would
	// create one more is refused (5.0: CONNACK 0x97 Quota exceeded; 3.1.1:
	// 0x03 Server unavailable) and counted; resuming an existing session is
	// always allowed. Sessions recovered at start are kept even above it.
	MaxSessions int `yaml:"maxSessions" json:"maxSessions" reload:"hot"`
	// MaxSessionsPerPrincipal caps the sessions of one principal (a
	// username; all anonymous clients together count as one principal),
	// refused as for MaxSessions; 0 means no limit. It keeps one leaked or
	// abused credential from taking the whole of MaxSessions.
	MaxSessionsPerPrincipal int `yaml:"maxSessionsPerPrincipal" json:"maxSessionsPerPrincipal" reload:"hot"`
}

// Queues bounds the offline queue of every persistent session.
type Queues struct {
	// MaxQueuedMessages is the most messages one session may have queued.
	MaxQueuedMessages int64 `yaml:"maxQueuedMessages" json:"maxQueuedMessages" reload:"hot"`
	// MaxQueuedBytes is the most bytes one session may have queued. A
	// message counts its encoded size (the MQTT 5.0 PUBLISH: topic, payload
	// and every property with its length prefixes) plus its publisher's
	// client ID and a 64-byte per-entry overhead, the same size every byte
	// budget uses (see docs/security.md).
	MaxQueuedBytes int64 `yaml:"maxQueuedBytes" json:"maxQueuedBytes" reload:"hot"`
	// OverflowPolicy is DropOldest, DropNewest or RejectPublish.
	OverflowPolicy string `yaml:"overflowPolicy" json:"overflowPolicy" reload:"hot"`
	// QueueQoS0 also queues QoS 0 messages for offline sessions.
	QueueQoS0 bool `yaml:"queueQoS0" json:"queueQoS0" reload:"hot"`
	// MaxStoreBytes is a global budget on stored message bytes that protects
	// the volume (each message counted once, at the size MaxQueuedBytes
	// describes, retained messages included); 0 means no limit. At the budget, new messages for offline
	// sessions are handled by OverflowPolicy (DropOldest behaves as
	// DropNewest, since other sessions' messages are never dropped).
	//
	// What counts against it is the larger of those message bytes and what
	// the store really occupies on disk (Pebble's own count of its files:
	// write-ahead log, tables, obsolete files, compactions in progress),
	// sampled every second. Acknowledgements and dequeues are never
	// refused, so sessions drain at the budget; the space they free returns
	// as Pebble compacts. /metrics and /v1/status report used, budget and
	// the volume's free space; the operator sets this to 90% of the volume.
	MaxStoreBytes int64 `yaml:"maxStoreBytes" json:"maxStoreBytes" reload:"hot"`
	// MinVolumeFreeBytes is a reserve of free space on the store's volume:
	// below it new messages for offline sessions are refused as at
	// MaxStoreBytes, whatever the budget (the volume may be shared, or
	// smaller than the budget says). 0 disables it.
	MinVolumeFreeBytes int64 `yaml:"minVolumeFreeBytes" json:"minVolumeFreeBytes" reload:"hot"`
	// Policies give classes of sessions (selected by client ID pattern,
	// principal or topic filter) their own queue limits, overflow policy,
	// expiry cap and share of MaxStoreBytes; a session takes the first
	// policy that selects it, and the values above for whatever that
	// policy leaves unset (sessions matching none take the values above).
	// At most 32. A reload applies a change to existing sessions at once;
	// a change of subscriptions re-selects the session's policy. See
	// QueuePolicy and docs/operations.md, "Queue policies".
	Policies []QueuePolicy `yaml:"policies,omitempty" json:"policies,omitempty" reload:"hot"`
}

// Limits protect the broker from abusive or broken clients.
type Limits struct {
	// MaxConnections is the most concurrent client connections; 0 = unlimited.
	MaxConnections int `yaml:"maxConnections" json:"maxConnections" reload:"hot"`
	// MaxPacketSize is the largest packet the broker accepts, in bytes.
	// The store sizes its write-stall headroom from the value at start, so
	// that one message this large does not hold every other commit while
	// it is flushed; raised by a reload, a larger message may hold them
	// for its flush until the next restart.
	MaxPacketSize uint32 `yaml:"maxPacketSize" json:"maxPacketSize" reload:"hot"`
	// MaxInflight is the Receive Maximum the broker announces and the most
	// unacknowledged QoS 1/2 messages it sends to one client. It also caps
	// the inbound QoS 2 exchanges of one session awaiting their PUBREL
	// (each holds state until PUBCOMP): one more is refused with DISCONNECT
	// 0x93 Receive Maximum exceeded (3.1.1: the connection is closed) and
	// counted.
	MaxInflight uint16 `yaml:"maxInflight" json:"maxInflight" reload:"hot"`
	// MaxSubscriptionsPerClient bounds the subscriptions of one session.
	MaxSubscriptionsPerClient int `yaml:"maxSubscriptionsPerClient" json:"maxSubscriptionsPerClient" reload:"hot"`
	// MaxClientIDLength bounds client identifiers, in bytes.
	MaxClientIDLength int `yaml:"maxClientIDLength" json:"maxClientIDLength" reload:"hot"`
	// ConnectTimeout closes connections that send no CONNECT in time.
	ConnectTimeout Duration `yaml:"connectTimeout" json:"connectTimeout" reload:"hot"`
	// MaxKeepAlive caps the keep alive of every client, 0 = no cap. A 5.0
	// client asking for more (or for 0, none) is told this Server Keep
	// Alive in CONNACK; a 3.1.1 client cannot be told, but is held to it
	// all the same: a connection silent for 1.5 times the cap is closed
	// (and counted), so idle connections cannot be held open forever.
	// Applies to new connections.
	MaxKeepAlive Duration `yaml:"maxKeepAlive" json:"maxKeepAlive" reload:"hot"`
	// MaxTopicAliases is the Topic Alias Maximum announced to 5.0 clients.
	MaxTopicAliases uint16 `yaml:"maxTopicAliases" json:"maxTopicAliases" reload:"hot"`
	// OutboundBufferBytes bounds the bytes waiting to be written to one
	// connection. When full, QoS 0 messages are dropped and counted; QoS 1/2
	// messages wait in the session's queue. It is also the byte window of a
	// session's delivery: at most this many bytes of queued messages are
	// read ahead into memory, and at most this many bytes of QoS 1/2
	// messages are unacknowledged in flight (each window admits at least one
	// message, whatever its size).
	OutboundBufferBytes int `yaml:"outboundBufferBytes" json:"outboundBufferBytes" reload:"hot"`
	// MemoryLimit is a soft limit on the memory of the broker process, in
	// bytes (the Go runtime's memory limit): near it the garbage collector
	// runs more often and returns freed memory to the system sooner, so
	// the resident set stays close to what is live. It is not a hard cap:
	// the broker never refuses work because of it. 0 leaves the runtime's
	// setting (GOMEMLIMIT, by default none). At start it also sizes the
	// store's memtables, which absorb writes before they go to disk: a
	// 32nd of it rounded down to a power of two, between 4 MiB (also
	// without a limit) and 64 MiB, so 16 MiB at 512 MiB. Larger memtables
	// cost less CPU per message under sustained ingest (fewer flushes and
	// compactions); a change that moves them applies at the next start
	// (until then /v1/status lists limits.memoryLimit among the fields
	// pending a restart).
	MemoryLimit int64 `yaml:"memoryLimit" json:"memoryLimit" reload:"hot"`
	// MaxUserProperties is the most MQTT 5.0 User Properties one property
	// block of a packet may carry (a CONNECT's will properties are a block
	// of their own). The decoder refuses the packet before it allocates
	// the excess: each 5-byte empty property would otherwise cost ~40 bytes
	// of memory. A client beyond it is disconnected (5.0: reason 0x95 Packet
	// too large) and the refusal counted. Applies to new connections.
	MaxUserProperties int `yaml:"maxUserProperties" json:"maxUserProperties" reload:"hot"`
	// MaxUserPropertyBytes bounds the encoded size of the User Properties
	// of one property block, in bytes; beyond it as for MaxUserProperties.
	MaxUserPropertyBytes int `yaml:"maxUserPropertyBytes" json:"maxUserPropertyBytes" reload:"hot"`
	// MaxTopicLength is the longest topic name or topic filter accepted, in
	// bytes (a shared subscription's "$share/{group}/" included); the
	// protocol allows 65535. It applies to PUBLISH (and so to retained
	// topics), will topics and SUBSCRIBE. Refused: a 5.0 PUBLISH at QoS 1/2
	// gets PUBACK/PUBREC 0x90 Topic Name invalid, any other PUBLISH closes
	// the connection (5.0: DISCONNECT 0x90); a will topic refuses the
	// CONNECT (5.0: CONNACK 0x90; 3.1.1 closes); a filter gets SUBACK 0x8F
	// (3.1.1: 0x80). Each refusal is counted.
	MaxTopicLength int `yaml:"maxTopicLength" json:"maxTopicLength" reload:"hot"`
	// MaxTopicLevels is the most levels ("/"-separated parts) of a topic
	// name or filter (of a shared subscription's inner filter), refused as
	// for MaxTopicLength. Every level is a node in the subscription tree or
	// the retained messages, so deep topics cost far more than their bytes.
	MaxTopicLevels int `yaml:"maxTopicLevels" json:"maxTopicLevels" reload:"hot"`
	// MaxRetainedMessages caps the number of retained messages (all are
	// held in memory and on disk); 0 means no limit. At the cap a retained
	// publish on a new topic is refused, while replacing or clearing an
	// existing topic's retained message still works. A refused 5.0 QoS 1/2
	// publish gets PUBACK/PUBREC 0x97 Quota exceeded and is not delivered
	// either (the publisher may retry); a publisher that cannot be told
	// (QoS 0, MQTT 3.1.1, a will) has its message delivered but not
	// retained. Each refusal is counted.
	MaxRetainedMessages int `yaml:"maxRetainedMessages" json:"maxRetainedMessages" reload:"hot"`
	// MaxRetainedBytes caps the bytes of all retained messages together
	// (each counted as in queues.maxQueuedBytes); 0 means no limit. Beyond
	// it as for MaxRetainedMessages, except that replacing a message by one
	// no larger is always allowed. Retained messages also count against
	// queues.maxStoreBytes.
	MaxRetainedBytes int64 `yaml:"maxRetainedBytes" json:"maxRetainedBytes" reload:"hot"`
}

// StoreMemTableBytes is the size of each of the store's memtables for
// this MemoryLimit, read at start: a 32nd of the limit, rounded down to a
// power of two, between 4 MiB (also without a limit) and 64 MiB. A
// memtable is written to a level-0 file when full, and under sustained
// ingest every such file spans every session's queue, so each compaction
// of level 0 rewrites most of the level below: larger memtables flush and
// compact less for the same messages (docs/durability.md). Their cost is
// memory: the usual two live on the Go heap and a collection cycle can
// hold about as much again, so a 32nd of the limit keeps them to about an
// eighth of it. Without a limit the store keeps the small size chosen for
// the resident set of a single node with a million queued messages.
func (l Limits) StoreMemTableBytes() int64 {
	size := int64(minStoreMemTable)
	for size < maxStoreMemTable && 2*size <= l.MemoryLimit/32 {
		size *= 2
	}
	return size
}

// The bounds of Limits.StoreMemTableBytes.
const (
	minStoreMemTable = 4 << 20
	maxStoreMemTable = 64 << 20
)

// Auth configures authentication and topic ACLs.
type Auth struct {
	// AllowAnonymous admits clients without a username. When unset, it
	// defaults to true only if every listener is on loopback and no users
	// are configured (local development, as mosquitto 2 does).
	AllowAnonymous *bool `yaml:"allowAnonymous,omitempty" json:"allowAnonymous,omitempty" reload:"hot"`
	// UsersFile holds one "username:bcrypt-hash" per line.
	UsersFile string `yaml:"usersFile" json:"usersFile" reload:"hot"`
	// ACL is the list of topic rules; empty allows everything to everyone
	// who may connect. With rules, a client may do only what a rule for it
	// allows: anonymous clients only what rules for user "" allow.
	ACL []ACLRule `yaml:"acl,omitempty" json:"acl,omitempty" reload:"hot"`
}

// ACLRule grants or denies access to topics matching Topic. The syntax and
// meaning of rules are defined once, in broker/access (see
// docs/security.md, "Users and ACLs").
type ACLRule struct {
	// User is who the rule is for: a username; "*" for every authenticated
	// user (anonymous clients are not included); or "" (or no user at all)
	// for anonymous clients only. Names starting with '$' are reserved.
	User string `yaml:"user" json:"user"`
	// Topic is a topic filter (wildcards + and # allowed). %u is replaced by
	// the username; %c by the client identifier, which the client chooses:
	// %c is not an identity. Rules for anonymous clients cannot use %u.
	Topic string `yaml:"topic" json:"topic"`
	// Access is publish, subscribe, readwrite or deny. A subscription is
	// granted when its filter could match a topic the client may read, and
	// the broker delivers only the messages whose topic the client may
	// read; a filter that lies wholly inside a deny rule is refused. Deny
	// rules win over allow rules.
	Access string `yaml:"access" json:"access"`
}

// Rules returns the ACL as broker/access rules, which the broker compiles
// with access.NewACL.
func (a Auth) Rules() []access.Rule {
	out := make([]access.Rule, len(a.ACL))
	for i, r := range a.ACL {
		out[i] = access.Rule{User: r.User, Topic: r.Topic, Kind: access.Kind(r.Access)}
	}
	return out
}

// Default returns the configuration used when a field is not set.
func Default() *Config {
	return &Config{
		Listeners: Listeners{
			MQTT:      TCPListener{Address: "127.0.0.1:1883"},
			WebSocket: WebSocketListener{Path: "/mqtt"},
		},
		Admin:      Admin{Address: "127.0.0.1:8080"},
		DataDir:    "./bollard-data",
		Durability: Durability{Mode: DurabilitySync, Interval: Duration(50 * time.Millisecond)},
		Sessions: Sessions{
			MaxSessionExpiry:        Duration(7 * 24 * time.Hour),
			DefaultSessionExpiry:    Duration(24 * time.Hour),
			MaxSessions:             100000,
			MaxSessionsPerPrincipal: 10000,
		},
		Queues: Queues{
			MaxQueuedMessages:  10000,
			MaxQueuedBytes:     16 << 20,
			OverflowPolicy:     OverflowDropOldest,
			MinVolumeFreeBytes: 64 << 20,
		},
		Limits: Limits{
			MaxConnections:            10000,
			MaxPacketSize:             1 << 20,
			MaxInflight:               128,
			MaxSubscriptionsPerClient: 100,
			MaxClientIDLength:         256,
			ConnectTimeout:            Duration(10 * time.Second),
			MaxKeepAlive:              Duration(time.Hour),
			MaxTopicAliases:           32,
			OutboundBufferBytes:       1 << 20,
			MaxUserProperties:         64,
			MaxUserPropertyBytes:      64 << 10,
			MaxTopicLength:            1024,
			MaxTopicLevels:            32,
			MaxRetainedMessages:       100000,
			MaxRetainedBytes:          64 << 20,
		},
		Login:        DefaultLogin(),
		LogLevel:     "info",
		Procs:        ProcsAuto,
		DrainTimeout: Duration(20 * time.Second),
	}
}

// Load reads and validates a configuration file, on top of Default.
func Load(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}

// Parse decodes YAML on top of Default and validates the result. Unknown
// fields are errors, so a typo never silently falls back to a default.
func Parse(b []byte) (*Config, error) {
	c := Default()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// PeekGeneration returns the configGeneration written in b, also when the
// rest of the file is invalid, so that a refused file can be reported by
// its generation. ok is false when b holds no readable configGeneration.
func PeekGeneration(b []byte) (gen int64, ok bool) {
	var v struct {
		ConfigGeneration *int64 `yaml:"configGeneration"`
	}
	if err := yaml.Unmarshal(b, &v); err != nil || v.ConfigGeneration == nil {
		return 0, false
	}
	return *v.ConfigGeneration, true
}

// Marshal renders c as YAML, the format Load reads.
func Marshal(c *Config) ([]byte, error) {
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return buf.Bytes(), nil
}

// Clone returns a deep copy of c.
func (c *Config) Clone() *Config {
	n := *c
	if c.Auth.AllowAnonymous != nil {
		v := *c.Auth.AllowAnonymous
		n.Auth.AllowAnonymous = &v
	}
	if c.Durability.EarlyDelivery != nil {
		v := *c.Durability.EarlyDelivery
		n.Durability.EarlyDelivery = &v
	}
	n.Auth.ACL = append([]ACLRule(nil), c.Auth.ACL...)
	n.Queues.Policies = clonePolicies(c.Queues.Policies)
	return &n
}
