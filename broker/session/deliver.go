package session

import (
	"cmp"
	"errors"
	"slices"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// ErrPacketIDNotFound: an acknowledgement names no inflight message.
var ErrPacketIDNotFound = errors.New("session: packet identifier not found")

// Outgoing is one packet the writer must send for the session: a PUBLISH
// (Msg set) or, when Pubrel is true, a PUBREL for PacketID.
type Outgoing struct {
	Msg             *store.Message
	QoS             byte
	Retain          bool
	Dup             bool
	PacketID        uint16
	SubscriptionIDs []uint32
	Pubrel          bool
}

// Attach binds a connection whose client announced receiveMax (its
// Receive Maximum). notify is called (with the session mutex held; it must
// not block) whenever there is something to send. For a persistent session
// the inflight entries left by the previous connection are read back from
// the store and sent again first: Sent entries as PUBLISH with DUP and
// their packet identifier, Released entries as PUBREL.
func (s *Session) Attach(receiveMax int, notify func()) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.withLive()
	s.online, s.q.receiveMax, s.q.notify = true, max(receiveMax, 1), notify
	s.rec.setDisconnectedAt(time.Time{})
	s.resetMemory()
	if !s.persistent() || s.env.Reader == nil {
		s.resendMemory()
		return nil
	}
	q := &s.q
	wm := q.watermark()
	err := s.env.Reader.ReadQueue(s.rec.ClientID, 0, 0, func(e store.QueueEntry, m *store.Message) bool {
		if e.Seq > wm || e.State == store.Queued {
			return false
		}
		it := &item{e: e, m: m, size: m.Size(), committed: true, stored: true, marked: true}
		if e.State == store.Released {
			it.m = nil // only its PUBREL is sent again
		}
		q.setInflight(e.PacketID, it)
		q.resend = append(q.resend, it)
		q.loadedSeq = e.Seq
		return true
	})
	s.refill()
	s.wake()
	return err
}

// resendMemory queues the inflight messages of a non-persistent session
// (resumed by a takeover) for resending, in Seq order.
func (s *Session) resendMemory() {
	q := &s.q
	q.resend = q.resend[:0]
	for _, it := range q.inflight {
		q.land(it)
		q.resend = append(q.resend, it)
	}
	slices.SortFunc(q.resend, func(a, b *item) int { return cmp.Compare(a.e.Seq, b.e.Seq) })
	s.wake()
}

// Detach unbinds the connection. The in-memory window of a persistent
// session is released (its queue stays in the store); pending QoS 0
// messages are dropped.
func (s *Session) Detach() { s.DetachMarks(nil) }

// DetachMarks is Detach that first writes the pending Sent marks of the
// connection's unacknowledged QoS 1 deliveries into b; the caller commits
// b before the session can be attached again.
func (s *Session) DetachMarks(b *store.Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.withLive()
	s.marksSubmitted(b) // the writer has ended
	s.markAll(b, true)
	s.online, s.q.notify = false, nil
	s.drop(DropSlowConsumer, len(s.q.qos0))
	s.q.qos0, s.q.qos0Bytes = nil, 0
	if s.persistent() {
		s.resetMemory()
	}
}

// resetMemory forgets the in-memory window of a persistent session so that
// it is read again from the store. Uncommitted head entries move back to
// pending, which keeps the watermark below them.
func (s *Session) resetMemory() {
	q := &s.q
	if !s.persistent() {
		return
	}
	s.markAll(nil, true) // before the entries go back: it records which went out (started)
	q.forgetAhead()
	var back []pend
	// The entries delivered early and still uncommitted come first (lower
	// Seqs than the head's); one whose commit failed is not in the store
	// and leaves the queue with the connection.
	if q.live != nil {
		for _, it := range q.early {
			back = append(back, pend{seq: it.e.Seq, size: it.size, exp: s.pendExpiry(it)})
		}
		clear(q.early)
		q.early = q.early[:0]
		for _, it := range q.inflight {
			if !it.stored {
				q.add(-1, -it.size)
			}
		}
	}
	for _, it := range q.head {
		if !it.committed {
			back = append(back, pend{seq: it.e.Seq, size: it.size, exp: s.pendExpiry(it)})
		}
	}
	q.pending.set(append(back, q.pending.items()...))
	q.head, q.headBytes, q.resend = nil, 0, nil
	s.marksSubmitted(nil) // DetachMarks wrote what was held back
	// The connection's read loop is over: what it did not submit, it
	// never will (the entries stay Queued, and are sent again).
	q.acksOut, q.marksHeld = false, false
	clear(q.inflight)
	q.flightBytes = 0
	q.loadedSeq = 0
}

// pendExpiry is the expiry a pending entry is purged at (expNanos): none
// for one that went out (started).
func (s *Session) pendExpiry(it *item) int64 {
	if s.q.wasStarted(it.e.Seq) {
		return 0
	}
	return expNanos(it.m.ExpiresAt)
}

// NextBatch appends to out up to max packets that may be sent now: resends
// first, then QoS 0 messages, then queued messages while the inflight
// window (Receive Maximum, and Limits.WindowBytes in bytes) has room. fits reports whether a PUBLISH fits
// the client's Maximum Packet Size; messages that do not are dropped.
// State changes go into b; wait is true when b must be committed before
// the packets are written (a QoS 2 PUBLISH must not go out before its
// packet identifier is durable, or a restart could deliver it twice).
func (s *Session) NextBatch(out []Outgoing, max int, fits func(*Outgoing) bool, b *store.Batch) (_ []Outgoing, wait bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.withLive()
	if !s.online {
		return out, false
	}
	s.marksSubmitted(b)
	s.q.marksHeld = false
	if len(s.q.unmarked) > 0 && !s.q.acksOut {
		s.markAged(s.now(), b)
	}
	out = s.nextResend(out, max)
	out = s.nextQoS0(out, max, fits)
	now := s.now()
	q := &s.q
	for len(out) < max && len(q.resend) == 0 && len(q.inflight) < s.q.receiveMax {
		if s.needRefill() {
			s.refill()
		}
		if len(q.head) == 0 || !q.head[0].deliverable() || !s.flightFits(q.head[0], now) {
			break
		}
		if h := q.head[0]; h.e.QoS == 2 && h.stored && !s.canMark() {
			q.marksHeld = true // its Sent mark must wait: see canMark
			break
		}
		it := s.popHead()
		o, ok := s.deliver(it, now, fits, b)
		if !ok {
			continue
		}
		wait = wait || (o.QoS == 2 && it.stored)
		out = append(out, o)
	}
	if wait {
		// The QoS 2 marks are made durable before the PUBLISHes go out:
		// the lazy marks of earlier QoS 1 deliveries go with them, so
		// the Sent entries in the store stay a prefix of the queue, which
		// is what Attach reads back after a crash.
		s.markAll(b, false)
	}
	return out, wait
}

func (s *Session) nextResend(out []Outgoing, max int) []Outgoing {
	q := &s.q
	now := s.now()
	for len(out) < max && len(q.resend) > 0 && len(q.inflight)-len(q.resend) < s.q.receiveMax {
		it := q.resend[0]
		if it.e.State != store.Released && !s.flightFits(it, now) {
			break
		}
		q.resend[0] = nil
		q.resend = q.resend[1:]
		if it.e.State == store.Released {
			out = append(out, Outgoing{Pubrel: true, PacketID: it.e.PacketID})
			continue
		}
		q.fly(it)
		out = append(out, outgoing(it, true))
	}
	return out
}

func (s *Session) nextQoS0(out []Outgoing, max int, fits func(*Outgoing) bool) []Outgoing {
	q := &s.q
	now := s.now()
	for len(out) < max && len(q.qos0) > 0 {
		it := q.qos0[0]
		q.qos0[0] = nil
		q.qos0 = q.qos0[1:]
		q.qos0Bytes -= it.size
		o := outgoing(it, false)
		switch {
		case it.m.Expired(now):
			s.drop(DropExpired, 1)
		case !s.readable(it.m):
			s.drop(DropReadDenied, 1)
		case fits != nil && !fits(&o):
			s.drop(DropTooLarge, 1)
		default:
			out = append(out, o)
		}
	}
	return out
}

// deliver turns a head entry into a packet: QoS 0 entries leave the queue,
// QoS 1/2 entries get a packet identifier and become inflight.
func (s *Session) deliver(it *item, now time.Time, fits func(*Outgoing) bool, b *store.Batch) (Outgoing, bool) {
	o := outgoing(it, false)
	started := s.q.wasStarted(it.e.Seq) // then its expiry no longer counts
	s.q.unstart(it.e.Seq)
	if it.m.Expired(now) && !started {
		s.remove(it, b)
		s.drop(DropExpired, 1)
		return o, false
	}
	if !s.readable(it.m) {
		s.remove(it, b)
		s.drop(DropReadDenied, 1)
		return o, false
	}
	if fits != nil && !fits(&o) {
		s.remove(it, b)
		s.drop(DropTooLarge, 1)
		return o, false
	}
	if it.e.QoS == 0 {
		s.remove(it, b)
		return o, true
	}
	pid := s.allocPID()
	it.e.State, it.e.PacketID = store.Sent, pid
	s.q.setInflight(pid, it)
	s.q.fly(it)
	if !it.committed {
		s.q.early = append(s.q.early, it) // delivered early: settle finds it here
	}
	o.PacketID = pid
	switch {
	case it.stored && it.e.QoS == 1:
		it.unmarked, it.sentAt = true, now
		s.q.unmarked = append(s.q.unmarked, it)
	case it.stored:
		e := it.e
		b.UpdateEntry(s.rec.ClientID, &e)
		it.marked = true
	}
	return o, true
}

// markDelay is how long a QoS 1 message may stay unacknowledged before
// its Sent state is written to the store.
const markDelay = 100 * time.Millisecond

// The Sent state of a stored QoS 1 entry (its packet identifier, and DUP
// on a resend after a restart) is written lazily: most deliveries are
// acknowledged within a round trip, and then only their Dequeue is
// written, instead of an UpdateEntry and a Dequeue per message. The marks
// of messages still unacknowledged after markDelay are written by the
// next NextBatch (every acknowledgement wakes the writer), the rest when
// the connection ends (DetachMarks), before the session can be attached
// again or the store closed. A crash loses at most the marks of that
// short window, as it could lose the NoSync marks before: such a message
// is delivered again after the restart as a first delivery (QoS 1 is at
// least once; nothing acknowledged is lost). QoS 2 entries are still
// marked before their PUBLISH is written, and the pending QoS 1 marks with
// them (NextBatch): a durable Sent entry never follows a Queued one, or
// Attach, which reads the inflight prefix, would not send it again.

// markAged writes the Sent marks of the unacknowledged entries sent
// markDelay ago or earlier into b.
func (s *Session) markAged(now time.Time, b *store.Batch) {
	q := &s.q
	for len(q.unmarked) > 0 {
		it := q.unmarked[0]
		if it.unmarked && (now.Sub(it.sentAt) < markDelay || !it.committed) {
			return // not aged yet, or delivered early and not committed: see markAll
		}
		q.unmarked[0] = nil
		q.unmarked = q.unmarked[1:]
		if it.unmarked {
			s.mark(it, b)
		}
	}
	q.unmarked = nil
}

// Sent marks stay a prefix. Attach reads the inflight entries back from
// the store as the Sent and Released entries before the first Queued one,
// and refill reads Queued entries only: a Sent entry behind a Queued one
// in the store would be sent on neither path (lost until every entry
// before it is gone). So a Sent mark is submitted to the store only when
// every entry before it is, in submission order, Sent, Released or gone.
// Two things stand in the way, and canMark checks both:
//
//   - an acknowledged entry whose Sent state was never written (a lazy QoS
//     1 mark): its Dequeue goes into the read loop's batch of
//     acknowledgements, which the read loop submits after the packets of
//     a burst are read. A mark written by the writer meanwhile could be
//     submitted first, and a crash (or a failover) between the two would
//     leave the acknowledged entry Queued in front of the marked one. Until
//     the owner reports the batch submitted (AcksSubmitted) no mark is
//     written;
//   - an entry delivered early whose Enqueue has not committed: its mark
//     is not written (markAll), so no later one may be. Entries commit in
//     Seq order, but their commits are reported per fan-out, and nothing
//     here relies on a later entry's not being reported first.
//
// A held QoS 2 delivery waits (its mark must be durable before its
// PUBLISH); held QoS 1 marks are written later or forgotten (the entry is
// delivered again as a first delivery, as QoS 1 allows).

// canMark reports whether a Sent mark may be written now (see above).
func (s *Session) canMark() bool { return !s.q.acksOut && len(s.q.early) == 0 }

// AcksSubmitted tells the session that the batch its acknowledgements
// (Puback, Pubcomp) wrote into has been submitted to the store, after
// every batch submitted before it: the Sent marks held back for it may be
// written.
func (s *Session) AcksSubmitted() {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &s.q
	if q.live == nil || !q.acksOut {
		return
	}
	q.acksOut = false
	if q.marksHeld {
		s.wake()
	}
}

// markAll writes the pending Sent marks into b (nil: none), in send
// order, up to the first entry delivered early whose Enqueue has not
// committed: its mark, written, could reach the store while the entry is
// past the watermark of a later Attach, which reads Sent entries only
// below it and refills Queued ones only, so the entry would be sent on
// neither path until the next one; and a mark after it would stand behind
// a Queued entry. With acknowledgements not submitted yet (acksOut) no
// mark is written. The marks not written stay pending while the
// connection lasts, or are forgotten (forget: it ends) and the entries
// are delivered again as first deliveries, as QoS 1 allows.
func (s *Session) markAll(b *store.Batch, forget bool) {
	q := &s.q
	if q.acksOut {
		b = nil
	}
	i := 0
	for ; b != nil && i < len(q.unmarked); i++ {
		it := q.unmarked[i]
		if !it.unmarked {
			continue // acknowledged
		}
		if !it.committed {
			break
		}
		s.mark(it, b)
	}
	rest := q.unmarked[i:]
	if forget {
		for _, it := range rest {
			if it.unmarked {
				q.start(it.e.Seq) // went out, and the store will not say so
			}
			it.unmarked = false
		}
		q.unmarked = nil
		return
	}
	n := copy(q.unmarked, rest)
	clear(q.unmarked[n:])
	q.unmarked = q.unmarked[:n]
}

func (s *Session) mark(it *item, b *store.Batch) {
	it.unmarked = false
	e := it.e
	b.UpdateEntry(s.rec.ClientID, &e)
	it.markInBatch, it.marked = true, true
	s.q.justMarked = append(s.q.justMarked, it)
}

// marksSubmitted runs when the batch of the previous NextBatch has been
// submitted (the writer calls NextBatch again, or the connection ended):
// its marks are on their way to the store, and the Dequeues of the
// entries acknowledged meanwhile, held back so as not to overtake them,
// go into b (nil: forgotten; the entries are sent again after a
// restart, as QoS 1 allows).
//
// The writer submits the batch after NextBatch returns; a PUBACK read
// meanwhile finishes the entry on the read loop, whose Dequeue could
// reach the store first, and the store refuses the mark of an entry that
// is gone, failing the writer's batch.
func (s *Session) marksSubmitted(b *store.Batch) {
	q := &s.q
	for _, it := range q.justMarked {
		it.markInBatch = false
	}
	clear(q.justMarked)
	q.justMarked = q.justMarked[:0]
	if b != nil {
		for _, seq := range q.later {
			b.Dequeue(s.rec.ClientID, seq)
		}
	}
	q.later = q.later[:0]
}

func outgoing(it *item, dup bool) Outgoing {
	return Outgoing{Msg: it.m, QoS: it.e.QoS, Retain: it.e.Retain, Dup: dup,
		PacketID: it.e.PacketID, SubscriptionIDs: it.e.SubscriptionIDs}
}

// allocPID returns a packet identifier not used by an inflight message.
// The inflight window is far below 65535, so the search ends.
func (s *Session) allocPID() uint16 {
	for {
		s.q.nextPID++
		if s.q.nextPID == 0 {
			s.q.nextPID = 1
		}
		if _, used := s.q.inflight[s.q.nextPID]; !used {
			return s.q.nextPID
		}
	}
}

// Puback completes the QoS 1 delivery of pid.
func (s *Session) Puback(pid uint16, b *store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.withLive()
	it, ok := s.q.inflight[pid]
	if !ok || it.e.QoS != 1 || it.e.State != store.Sent {
		return ErrPacketIDNotFound
	}
	s.finish(pid, it, b)
	return nil
}

// Pubrec handles the PUBREC of pid. With a success code the entry becomes
// Released and the caller must send PUBREL once b is committed (wait: b
// must be synced first). An error code (5.0) ends the delivery.
func (s *Session) Pubrec(pid uint16, failed bool, b *store.Batch) (release bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.withLive()
	it, ok := s.q.inflight[pid]
	if !ok || it.e.QoS != 2 {
		return false, ErrPacketIDNotFound
	}
	if it.e.State == store.Released {
		return true, nil // a resent PUBREC: answer with PUBREL again
	}
	if failed {
		s.finish(pid, it, b)
		return false, nil
	}
	it.e.State = store.Released
	it.m = nil // the message is not needed any more
	s.q.land(it)
	s.wakeOpened() // its bytes left the window
	if it.stored {
		e := it.e
		b.UpdateEntry(s.rec.ClientID, &e)
	}
	return true, nil
}

// Pubcomp completes the QoS 2 delivery of pid.
func (s *Session) Pubcomp(pid uint16, b *store.Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.q.withLive()
	it, ok := s.q.inflight[pid]
	if !ok || it.e.State != store.Released {
		return ErrPacketIDNotFound
	}
	s.finish(pid, it, b)
	return nil
}

func (s *Session) finish(pid uint16, it *item, b *store.Batch) {
	if it.stored && !it.marked {
		// Queued in the store until b, the caller's, is submitted: no
		// mark before that (canMark).
		s.q.acksOut = true
	}
	it.unmarked = false // acknowledged: the Dequeue alone is enough
	if !it.committed {
		// Acknowledged before its Enqueue committed: its Dequeue is
		// submitted after it, and a detach need not keep the watermark
		// below it.
		if i := slices.Index(s.q.early, it); i >= 0 {
			s.q.early = slices.Delete(s.q.early, i, i+1)
		}
	}
	delete(s.q.inflight, pid)
	s.q.land(it)
	for i, r := range s.q.resend {
		if r == it {
			s.q.resend = append(s.q.resend[:i], s.q.resend[i+1:]...)
			break
		}
	}
	s.remove(it, b)
	s.wakeOpened()
}

// wakeOpened wakes the connection after an acknowledgement opened the
// window, when something may wait for it: queued entries past the inflight
// ones (held back by the window), entries to resend, Sent marks not yet
// written, or Dequeues left for the next NextBatch (later). With one
// message in flight nothing does, and the wake-up would only run the
// writer goroutine for nothing, holding the write lock while the
// publisher's read loop writes the next delivery inline (issue 13).
func (s *Session) wakeOpened() {
	q := &s.q
	if q.msgs > int64(len(q.inflight)) || len(q.resend) > 0 || len(q.unmarked) > 0 || len(q.later) > 0 {
		s.wake()
	}
}
