package store

import "time"

// Session is the durable part of a client session.
type Session struct {
	// ClientID identifies the session.
	ClientID string
	// Principal is the authenticated identity that created the session
	// (the username, or "" for anonymous clients). Only it may resume it.
	Principal string
	// ProtocolVersion is the MQTT protocol level of the last connection
	// (3, 4 or 5).
	ProtocolVersion byte
	// ExpiryInterval is the granted session expiry, in seconds, counted
	// from DisconnectedAt.
	ExpiryInterval uint32
	// CreatedAt is when the session was created.
	CreatedAt time.Time
	// DisconnectedAt is when the last connection ended; zero while a
	// connection is open. Recovery treats sessions that were connected when
	// the broker stopped as disconnected at recovery time.
	DisconnectedAt time.Time
	// Will is the pending will message, or nil.
	Will *Will
}

// ExpiresAt is when a disconnected session expires; zero while connected.
func (s *Session) ExpiresAt() time.Time {
	if s.DisconnectedAt.IsZero() {
		return time.Time{}
	}
	return s.DisconnectedAt.Add(time.Duration(s.ExpiryInterval) * time.Second)
}

// Will is a will message with its 5.0 delay interval.
type Will struct {
	Message Message
	// DelayInterval is the 5.0 will delay, in seconds.
	DelayInterval uint32
}

// Subscription is one subscription of a session, with its options.
type Subscription struct {
	// Filter is the topic filter as subscribed, including any
	// "$share/{group}/" prefix.
	Filter string
	// QoS is the maximum QoS granted.
	QoS byte
	// NoLocal: do not deliver messages published by this client (5.0).
	NoLocal bool
	// RetainAsPublished keeps the retain flag of forwarded messages (5.0).
	RetainAsPublished bool
	// RetainHandling is the 5.0 retain handling option (0, 1 or 2).
	RetainHandling byte
	// ID is the 5.0 subscription identifier, 0 when absent.
	ID uint32
}

// UserProperty is a 5.0 user property.
type UserProperty struct {
	Key, Value string
}

// Properties are the 5.0 publish properties forwarded with a message.
type Properties struct {
	// PayloadFormat is the payload format indicator; nil when absent.
	PayloadFormat   *byte
	ContentType     string
	ResponseTopic   string
	CorrelationData []byte
	UserProperties  []UserProperty
}

// Message is an application message as published.
type Message struct {
	// ID is assigned by the caller from Store.NextMessageID; it is unique
	// and increases in publish order.
	ID uint64
	// Publisher is the client ID of the publisher (for the 5.0 No Local option).
	Publisher string
	Topic     string
	Payload   []byte
	// QoS is the QoS the message was published with.
	QoS    byte
	Retain bool
	Props  Properties
	// PublishedAt is when the broker received the message.
	PublishedAt time.Time
	// ExpiresAt is when the 5.0 message expiry interval runs out; zero for
	// never. The remaining interval is sent on delivery.
	ExpiresAt time.Time
}

// EntryOverhead is what every message counts against the byte budgets
// beyond its encoded size: the bookkeeping that carries it (its stored
// record's key, identifier, timestamps and reference count, a queue entry,
// the in-memory item of a session's queue). Without it a flood of empty
// messages would cost memory and disk yet count as nothing.
const EntryOverhead = 64

// Size is the number of bytes the message counts against every byte budget
// (a session's maxQueuedBytes, the global store budget, the delivery byte
// windows): the size of the MQTT 5.0 PUBLISH that carries it (fixed header,
// topic, packet identifier, every property with its identifier and length
// prefixes, payload), plus its publisher's client ID and EntryOverhead. So
// a property costs what it costs on the wire: a user property with an empty
// key and value counts 5 bytes, not 0.
func (m *Message) Size() int64 {
	props := 0
	if m.Props.PayloadFormat != nil {
		props += 2
	}
	if !m.ExpiresAt.IsZero() {
		props += 5
	}
	if m.Props.ContentType != "" {
		props += 3 + len(m.Props.ContentType)
	}
	if m.Props.ResponseTopic != "" {
		props += 3 + len(m.Props.ResponseTopic)
	}
	if m.Props.CorrelationData != nil {
		props += 3 + len(m.Props.CorrelationData)
	}
	for _, p := range m.Props.UserProperties {
		props += 5 + len(p.Key) + len(p.Value)
	}
	body := 2 + len(m.Topic) + 2 + varintSize(props) + props + len(m.Payload)
	return int64(1+varintSize(body)+body) + int64(len(m.Publisher)) + EntryOverhead
}

// varintSize is the length of n as an MQTT Variable Byte Integer.
func varintSize(n int) int {
	switch {
	case n < 1<<7:
		return 1
	case n < 1<<14:
		return 2
	case n < 1<<21:
		return 3
	}
	return 4
}

// Expired reports whether the message has expired at now.
func (m *Message) Expired(now time.Time) bool {
	return !m.ExpiresAt.IsZero() && !now.Before(m.ExpiresAt)
}

// DeliveryState is where a queue entry is in its delivery to the client.
type DeliveryState byte

const (
	// Queued: not yet sent on the current connection.
	Queued DeliveryState = iota
	// Sent: sent with PacketID, awaiting PUBACK (QoS 1) or PUBREC (QoS 2).
	// Resent with DUP=1 on reconnect.
	Sent
	// Released: QoS 2 PUBREC received and PUBREL sent, awaiting PUBCOMP.
	// On reconnect the PUBREL is resent, never the PUBLISH.
	Released
)

// String names the state.
func (s DeliveryState) String() string {
	switch s {
	case Queued:
		return "queued"
	case Sent:
		return "sent"
	case Released:
		return "released"
	}
	return "unknown"
}

// QueueEntry is one message in a session's outbound queue. Entries are
// ordered by Seq, which the session assigns in increasing order; the
// inflight window is the prefix of the queue in state Sent or Released.
type QueueEntry struct {
	Seq       uint64
	MessageID uint64
	// QoS is the delivery QoS: min(published QoS, subscription QoS).
	QoS byte
	// Retain is the retain flag to deliver with.
	Retain bool
	// SubscriptionIDs are the 5.0 subscription identifiers that matched.
	SubscriptionIDs []uint32
	State           DeliveryState
	// PacketID is the packet identifier used when sent; 0 while Queued.
	PacketID uint16
}

// SessionState is everything recovery yields for one session.
type SessionState struct {
	Session Session
	// Subscriptions are in filter order.
	Subscriptions []Subscription
	// InboundQoS2 are packet IDs of QoS 2 messages received from the
	// client whose PUBREL has not arrived yet, in ascending order.
	InboundQoS2 []uint16
	// Queue summarises the outbound queue.
	Queue QueueStats
}

// QueueStats summarises one session's queue.
type QueueStats struct {
	// Messages and Bytes count the entries and their messages' Size.
	Messages int64
	Bytes    int64
	// LastSeq is the highest Seq ever stored for the session (0 if none),
	// so that new entries continue after it.
	LastSeq uint64
}

// DiskUsage is what a durable store occupies on its volume, as the storage
// engine itself counts it.
type DiskUsage struct {
	// Used is the bytes of the store's files: tables, write-ahead log
	// (including obsolete files not deleted yet), manifest, options and
	// compactions in progress.
	Used int64
	// CompactionDebt is the engine's estimate of the bytes compactions
	// still have to rewrite.
	CompactionDebt int64
	// VolumeFree and VolumeSize are the bytes available to the broker on
	// the volume holding the store, and its size (statfs); 0 when unknown.
	VolumeFree int64
	VolumeSize int64
	// Reserved is free space the store needs to keep for itself beyond
	// the broker's reserve (queues.minVolumeFreeBytes): a cluster member's
	// next Raft snapshot writes a copy of the store. 0 for a single node.
	Reserved int64
}

// DiskReporter is implemented by the stores that live on a volume.
type DiskReporter interface {
	// DiskUsage reports the store's use of its volume. It is cheap enough
	// to call about once a second, not per operation.
	DiskUsage() (DiskUsage, error)
}

// Stats summarise the whole store.
type Stats struct {
	Sessions int64
	// Messages and Bytes count distinct stored messages (not retained ones).
	Messages int64
	Bytes    int64
	Retained int64
}
