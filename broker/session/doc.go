// Package session is the per-client state machine of the broker: the
// durable session record (principal, expiry, will), subscriptions, the
// outbound queue with its limits and overflow policy, the inflight window
// bounded by the client's Receive Maximum, packet identifiers, and the
// inbound QoS 2 state.
//
// A Session does no network I/O and reads the wall clock only through an
// injected function. It never commits to the store itself: methods that
// change durable state append operations to a caller's store.Batch, and the
// caller commits them (through the server's ordered committer) and reports
// the outcome back with Settle. The only store access is reading a
// persistent session's queue through the Reader interface, in bounded
// windows, so a session with a million queued messages holds at most a
// window of them in memory.
//
// Queue model. Every queue entry has a Seq, assigned in increasing order by
// Offer. The queue of a persistent session (expiry interval > 0) lives in
// the store: the inflight prefix (entries Sent or Released on a connection)
// followed by Queued entries. In memory the session keeps the inflight
// entries (only while online), a bounded "head" of the first Queued entries
// with their messages, and the Seqs of entries not yet committed. Entries
// past the head are read back from the store (Reader.ReadQueue after
// loadedSeq) as the head drains, so new messages keep their order behind a
// backlog. A non-persistent session keeps its whole queue in memory, bounded
// by the same limits.
//
// Sent marks. A QoS 2 entry is marked Sent in the store before its PUBLISH
// is written, together with the pending marks of the QoS 1 entries
// delivered before it, so that the Sent entries in the store are always a
// prefix of the queue. A QoS 1 entry is marked lazily (see markAged in deliver.go):
// one acknowledged within markDelay costs only its Dequeue; the marks of
// the others are written by the next NextBatch after markDelay, or by
// DetachMarks when the connection ends, so a restart resends them with DUP
// and their packet identifier. Attach reads the inflight prefix only (it
// stops at the first Queued entry), so a mark is submitted only when every
// entry before it is, in submission order, marked or gone: a QoS 2
// delivery waits while the Dequeue of an entry acknowledged without a mark
// sits in the read loop's unsubmitted batch (AcksSubmitted ends that) or
// an early entry before it is uncommitted. See "Sent marks stay a prefix"
// in deliver.go.
//
// Early delivery. A QoS 1 entry that joins the head of an online queue
// with nothing uncommitted or unread before it may be sent before its
// Enqueue commits (Offer returns Result.Early; the caller calls
// Deliverable once the batch is submitted, so the Dequeue of the
// acknowledgement and any Sent mark commit after the Enqueue). The
// publisher's acknowledgement still waits for the commit. Such an entry
// gets no Sent mark until it is committed; a connection that ends first
// leaves it Queued (it is sent again, as a first delivery, once
// committed), and one whose commit fails is forgotten: the client keeps
// what it received, as QoS 1 (at least once) allows. QoS 2 entries never
// go early: their Sent mark must be durable before the PUBLISH.
//
// Pacing. Delivery is bounded by the client's Receive Maximum (messages in
// flight) and by a byte window (Limits.WindowBytes, from the config's
// limits.outboundBufferBytes) applied twice: to the queued messages held in
// memory ahead of delivery and to the QoS 1/2 bytes unacknowledged in
// flight. Each window admits at least one message, so a message larger than
// the window is still delivered, alone.
//
// Expiry. Message expiry is checked on delivery (the remaining interval is
// sent). When a message does not fit the queue limits, Offer first purges
// expired Queued entries (from memory, then from the store in bounded reads,
// resuming where the last purge stopped, and not before the earliest
// surviving expiry), counting each as an "expired" drop, and only then
// applies the overflow policy.
//
// A Session is safe for concurrent use; its methods take its mutex, and
// callbacks in Hooks are called with it held (they must not block or call
// back into the Session).
package session
