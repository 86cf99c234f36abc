package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"
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
	// DrainTimeout bounds a graceful shutdown: after it, remaining
	// connections are closed and the store is flushed and closed.
	DrainTimeout Duration `yaml:"drainTimeout" json:"drainTimeout" reload:"hot"`
}

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
}

// Durability selects when acknowledged messages reach the disk.
type Durability struct {
	// Mode is sync, interval or none.
	Mode string `yaml:"mode" json:"mode" reload:"restart"`
	// Interval is the fsync period in interval mode (the loss window).
	Interval Duration `yaml:"interval" json:"interval" reload:"restart"`
}

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
}

// Queues bounds the offline queue of every persistent session.
type Queues struct {
	// MaxQueuedMessages is the most messages one session may have queued.
	MaxQueuedMessages int64 `yaml:"maxQueuedMessages" json:"maxQueuedMessages" reload:"hot"`
	// MaxQueuedBytes is the most payload+topic bytes one session may have queued.
	MaxQueuedBytes int64 `yaml:"maxQueuedBytes" json:"maxQueuedBytes" reload:"hot"`
	// OverflowPolicy is DropOldest, DropNewest or RejectPublish.
	OverflowPolicy string `yaml:"overflowPolicy" json:"overflowPolicy" reload:"hot"`
	// QueueQoS0 also queues QoS 0 messages for offline sessions.
	QueueQoS0 bool `yaml:"queueQoS0" json:"queueQoS0" reload:"hot"`
	// MaxStoreBytes is a global budget on stored message bytes that protects
	// the volume; 0 means no limit. At the budget, new messages for offline
	// sessions are handled by OverflowPolicy (DropOldest behaves as
	// DropNewest, since other sessions' messages are never dropped).
	MaxStoreBytes int64 `yaml:"maxStoreBytes" json:"maxStoreBytes" reload:"hot"`
}

// Limits protect the broker from abusive or broken clients.
type Limits struct {
	// MaxConnections is the most concurrent client connections; 0 = unlimited.
	MaxConnections int `yaml:"maxConnections" json:"maxConnections" reload:"hot"`
	// MaxPacketSize is the largest packet the broker accepts, in bytes.
	MaxPacketSize uint32 `yaml:"maxPacketSize" json:"maxPacketSize" reload:"hot"`
	// MaxInflight is the Receive Maximum the broker announces and the most
	// unacknowledged QoS 1/2 messages it sends to one client.
	MaxInflight uint16 `yaml:"maxInflight" json:"maxInflight" reload:"hot"`
	// MaxSubscriptionsPerClient bounds the subscriptions of one session.
	MaxSubscriptionsPerClient int `yaml:"maxSubscriptionsPerClient" json:"maxSubscriptionsPerClient" reload:"hot"`
	// MaxClientIDLength bounds client identifiers, in bytes.
	MaxClientIDLength int `yaml:"maxClientIDLength" json:"maxClientIDLength" reload:"hot"`
	// ConnectTimeout closes connections that send no CONNECT in time.
	ConnectTimeout Duration `yaml:"connectTimeout" json:"connectTimeout" reload:"hot"`
	// MaxKeepAlive caps the keep alive a client may ask for (5.0 clients
	// are told the server keep alive); 0 = no cap.
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
	// setting (GOMEMLIMIT, by default none).
	MemoryLimit int64 `yaml:"memoryLimit" json:"memoryLimit" reload:"hot"`
}

// Auth configures authentication and topic ACLs.
type Auth struct {
	// AllowAnonymous admits clients without a username. When unset, it
	// defaults to true only if every listener is on loopback and no users
	// are configured (local development, as mosquitto 2 does).
	AllowAnonymous *bool `yaml:"allowAnonymous,omitempty" json:"allowAnonymous,omitempty" reload:"hot"`
	// UsersFile holds one "username:bcrypt-hash" per line.
	UsersFile string `yaml:"usersFile" json:"usersFile" reload:"hot"`
	// ACL is the list of topic rules; empty allows everything to everyone
	// who may connect.
	ACL []ACLRule `yaml:"acl,omitempty" json:"acl,omitempty" reload:"hot"`
}

// ACLRule grants or denies access to topics matching Topic.
type ACLRule struct {
	// User is a username, "*" for every authenticated user, or "" for
	// anonymous clients.
	User string `yaml:"user" json:"user"`
	// Topic is a topic filter; %u is replaced by the username and %c by the
	// client identifier.
	Topic string `yaml:"topic" json:"topic"`
	// Access is publish, subscribe, readwrite or deny.
	Access string `yaml:"access" json:"access"`
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
			MaxSessionExpiry:     Duration(7 * 24 * time.Hour),
			DefaultSessionExpiry: Duration(24 * time.Hour),
		},
		Queues: Queues{
			MaxQueuedMessages: 10000,
			MaxQueuedBytes:    16 << 20,
			OverflowPolicy:    OverflowDropOldest,
		},
		Limits: Limits{
			MaxConnections:            10000,
			MaxPacketSize:             1 << 20,
			MaxInflight:               128,
			MaxSubscriptionsPerClient: 100,
			MaxClientIDLength:         256,
			ConnectTimeout:            Duration(10 * time.Second),
			MaxTopicAliases:           32,
			OutboundBufferBytes:       1 << 20,
		},
		Login:        DefaultLogin(),
		LogLevel:     "info",
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
	n.Auth.ACL = append([]ACLRule(nil), c.Auth.ACL...)
	return &n
}
