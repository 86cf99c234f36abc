package store

import "strconv"

// OpKind is the kind of a batch operation.
//
// Validation rules, checked by Commit against the stored state and the
// operations earlier in the same batch (a violation fails the whole batch):
//   - OpPutSubscription, OpEnqueue and OpPutInboundQoS2 need the session to
//     exist (ErrNotFound otherwise).
//   - OpPutMessage needs an ID > 0 from Store.NextMessageID, never put
//     before. Putting an ID twice in one batch, or the ID of a message
//     stored with several references, fails with ErrInvalid; a store need
//     not detect every other reuse.
//   - OpEnqueue needs its message to be put by an OpPutMessage earlier in
//     the same batch (ErrNotFound otherwise: every reference to a message
//     is created in the batch that stores it, so a store may keep a message
//     with a single reference inside its queue entry), and a Seq greater
//     than the session's QueueStats.LastSeq (ErrInvalid): queues only grow
//     at the tail.
//   - OpUpdateEntry and OpDequeue need the entry to exist (ErrNotFound).
//   - Deleting something that does not exist (session, subscription,
//     inbound QoS 2 packet ID, retained message) is not an error.
type OpKind byte

// Batch operation kinds.
const (
	OpPutSession OpKind = iota + 1
	// OpDeleteSession deletes the session and everything it owns:
	// subscriptions, queue entries (releasing their messages) and inbound
	// QoS 2 state.
	OpDeleteSession
	OpPutSubscription
	OpDeleteSubscription
	// OpPutMessage stores a message; it must be referenced by an
	// OpEnqueue in the same batch, or it is not stored at all.
	OpPutMessage
	OpEnqueue
	// OpUpdateEntry rewrites an existing entry's State, PacketID, QoS and
	// Retain (for example when it is sent or released). Its MessageID and
	// SubscriptionIDs are kept as stored.
	OpUpdateEntry
	// OpDequeue removes an entry; the message goes with its last reference.
	OpDequeue
	OpPutInboundQoS2
	OpDeleteInboundQoS2
	OpPutRetained
	OpDeleteRetained
)

var opKindNames = [...]string{
	OpPutSession:         "PutSession",
	OpDeleteSession:      "DeleteSession",
	OpPutSubscription:    "PutSubscription",
	OpDeleteSubscription: "DeleteSubscription",
	OpPutMessage:         "PutMessage",
	OpEnqueue:            "Enqueue",
	OpUpdateEntry:        "UpdateEntry",
	OpDequeue:            "Dequeue",
	OpPutInboundQoS2:     "PutInboundQoS2",
	OpDeleteInboundQoS2:  "DeleteInboundQoS2",
	OpPutRetained:        "PutRetained",
	OpDeleteRetained:     "DeleteRetained",
}

// String names the kind, for error messages.
func (k OpKind) String() string {
	if int(k) < len(opKindNames) && opKindNames[k] != "" {
		return opKindNames[k]
	}
	return "OpKind(" + strconv.Itoa(int(k)) + ")"
}

// Op is one operation of a batch. Which fields are used depends on Kind.
type Op struct {
	Kind         OpKind
	ClientID     string
	Session      *Session
	Subscription *Subscription
	// Filter names the subscription for OpDeleteSubscription; Topic names
	// the retained message for OpDeleteRetained.
	Filter   string
	Topic    string
	Message  *Message
	Entry    *QueueEntry
	Seq      uint64
	PacketID uint16
}

// Batch is an ordered list of operations applied atomically by
// Store.Commit. A batch is not safe for concurrent use; neither it nor the
// records it points to (sessions, subscriptions, messages, entries) may be
// modified until its commit finished: Commit returned, or, for
// Pipeliner.CommitNoWait, its wait returned. A store keeps no reference to
// a batch or its records after that (it copies or encodes what it keeps),
// so the caller may then reuse both.
type Batch struct {
	Ops []Op
	// NoSync lets Commit return before the batch is fsynced. Use it only
	// for writes that acknowledge nothing to a client (for example marking
	// an entry as sent).
	NoSync bool
}

// Len is the number of operations in b.
func (b *Batch) Len() int { return len(b.Ops) }

// Reset empties b for reuse.
func (b *Batch) Reset() { b.Ops = b.Ops[:0]; b.NoSync = false }

// PutSession creates or replaces a session record.
func (b *Batch) PutSession(s *Session) {
	b.Ops = append(b.Ops, Op{Kind: OpPutSession, ClientID: s.ClientID, Session: s})
}

// DeleteSession deletes a session and everything it owns.
func (b *Batch) DeleteSession(clientID string) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteSession, ClientID: clientID})
}

// PutSubscription creates or replaces the subscription with s.Filter.
func (b *Batch) PutSubscription(clientID string, s *Subscription) {
	b.Ops = append(b.Ops, Op{Kind: OpPutSubscription, ClientID: clientID, Subscription: s})
}

// DeleteSubscription removes the subscription with filter.
func (b *Batch) DeleteSubscription(clientID, filter string) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteSubscription, ClientID: clientID, Filter: filter})
}

// PutMessage stores m once, for the OpEnqueue operations that follow.
func (b *Batch) PutMessage(m *Message) { b.Ops = append(b.Ops, Op{Kind: OpPutMessage, Message: m}) }

// Enqueue appends e to clientID's queue. e.MessageID must name a message
// already stored or put earlier in the batch.
func (b *Batch) Enqueue(clientID string, e *QueueEntry) {
	b.Ops = append(b.Ops, Op{Kind: OpEnqueue, ClientID: clientID, Entry: e})
}

// UpdateEntry rewrites an existing entry (matched by e.Seq).
func (b *Batch) UpdateEntry(clientID string, e *QueueEntry) {
	b.Ops = append(b.Ops, Op{Kind: OpUpdateEntry, ClientID: clientID, Entry: e})
}

// Dequeue removes the entry with seq from clientID's queue.
func (b *Batch) Dequeue(clientID string, seq uint64) {
	b.Ops = append(b.Ops, Op{Kind: OpDequeue, ClientID: clientID, Seq: seq})
}

// PutInboundQoS2 records that a QoS 2 PUBLISH with packetID was received
// and PUBREC is due; its PUBREL has not arrived.
func (b *Batch) PutInboundQoS2(clientID string, packetID uint16) {
	b.Ops = append(b.Ops, Op{Kind: OpPutInboundQoS2, ClientID: clientID, PacketID: packetID})
}

// DeleteInboundQoS2 forgets packetID once its PUBREL arrived.
func (b *Batch) DeleteInboundQoS2(clientID string, packetID uint16) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteInboundQoS2, ClientID: clientID, PacketID: packetID})
}

// PutRetained stores m as the retained message of m.Topic.
func (b *Batch) PutRetained(m *Message) {
	b.Ops = append(b.Ops, Op{Kind: OpPutRetained, Topic: m.Topic, Message: m})
}

// DeleteRetained removes the retained message of topic.
func (b *Batch) DeleteRetained(topic string) {
	b.Ops = append(b.Ops, Op{Kind: OpDeleteRetained, Topic: topic})
}
