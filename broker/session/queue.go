package session

import (
	"cmp"
	"slices"
	"time"

	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/store"
)

// Head window sizes: the most Queued entries held in memory per session
// (offlineHead: one that is offline, read only when dropAhead cannot).
const (
	offlineHead = 16
	minHead     = 32
	maxHead     = 1024
)

// item is one queue entry held in memory, with its message.
type item struct {
	e         store.QueueEntry
	m         *store.Message
	size      int64
	committed bool // its Enqueue is durable (always true when not stored)
	stored    bool // the entry lives in the store (persistent session)
	// early: a stored QoS 1 entry that may be delivered before its
	// Enqueue commits (Deliverable; see "Early delivery" in doc.go).
	early  bool
	flying bool // counted in queue.flightBytes
	// unmarked: a stored QoS 1 entry sent on this connection whose Sent
	// state is not in the store yet (see markAged); sentAt is when.
	unmarked bool
	sentAt   time.Time
	// markInBatch: NextBatch wrote its Sent mark into the batch it
	// returned, which the writer may not have submitted yet (see finish).
	markInBatch bool
	// marked: its Sent (or Released) state was written into a batch, or
	// read from the store; an entry acknowledged before that is Queued in
	// the store until its Dequeue is submitted (see canMark).
	marked bool
}

// deliverable reports whether the entry may be sent: its Enqueue is
// durable, or it may go early (Deliverable).
func (it *item) deliverable() bool { return it.committed || it.early }

// pend is a stored entry past the head whose Enqueue is not committed yet.
// It holds no pointer (24 bytes): a fan-out pushes one per offline session
// per message, and a pointer-free array is neither scanned by the GC nor
// written with write barriers.
type pend struct {
	seq  uint64
	size int64
	exp  int64 // the message's ExpiresAt, see expNanos
}

// expNanos encodes an expiry time for pend: Unix nanoseconds, 0 for the
// zero time (never). Expiry times lie within an int64 of nanoseconds (the
// years 1678 to 2262); one that falls on the Unix epoch is kept as 1 ns
// later, which only delays the purge it schedules by that much.
func expNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	if n := t.UnixNano(); n != 0 {
		return n
	}
	return 1
}

// expTime decodes expNanos.
func expTime(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

type queue struct {
	lastSeq   uint64 // highest Seq assigned
	loadedSeq uint64 // every entry <= loadedSeq is in head, inflight or gone
	msgs      int64  // entries in the queue, inflight included
	bytes     int64
	head      []*item          // first Queued entries, in Seq order
	headBytes int64            // bytes of the messages in head
	pending   pends            // uncommitted stored entries after loadedSeq, in Seq order
	inflight  map[uint16]*item // nil until the first entry (setInflight)
	acct      *Account         // the account that sums msgs and bytes with others'; see add
	// live is the state of delivering to a connection (its fields are
	// promoted); nil until the session is first attached or acknowledged
	// (withLive), then kept.
	*live
	// pg is the state of purging expired entries (purge.go); nil until a
	// message with an expiry is queued or an entry is dropped past the
	// head, which most sessions at rest never see.
	pg *purging
}

// live is what a queue needs while a connection is attached: a session at
// rest that never had one does without (about 150 bytes of a million
// offline sessions).
type live struct {
	// receiveMax is the client's Receive Maximum; notify wakes its
	// connection's writer (Attach).
	receiveMax int
	notify     func()
	// flightBytes counts the messages sent on this connection and not yet
	// acknowledged (see window.go).
	flightBytes int64
	resend      []*item // inflight entries to send again on this connection
	// early holds the entries delivered on this connection before their
	// Enqueue committed and not acknowledged since, in Seq order: settle
	// finds them here, and a detach gives the uncommitted ones back to
	// pending, which keeps the watermark below them.
	early    []*item
	unmarked []*item // stored QoS 1 entries sent without a Sent mark, in send order
	// justMarked are the entries whose marks the last NextBatch wrote;
	// later holds the Dequeues of those acknowledged before the next
	// NextBatch, which writes them (see finish).
	justMarked []*item
	later      []uint64
	// acksOut: an acknowledgement wrote the Dequeue of an entry with no
	// durable Sent mark into the caller's batch (finish), which may not
	// be submitted yet; until AcksSubmitted no Sent mark is written.
	// marksHeld: NextBatch held a mark (a QoS 2 delivery) back for that
	// or for an uncommitted early entry; the event that ends the hold
	// wakes the connection. See "Sent marks stay a prefix" in deliver.go.
	acksOut   bool
	marksHeld bool
	// started holds the Seqs of stored QoS 1 entries sent on an earlier
	// connection whose Sent state was never written (an entry delivered
	// early whose connection ended before its commit, and the marks that
	// had to wait for it or for submitted acknowledgements: markAll). Their
	// onward delivery started, so their expiry no longer removes them
	// [MQTT-3.3.2-5 deletes only a copy whose delivery has not started]:
	// they are sent again with an expiry of 0, as a Sent entry is. Kept in
	// memory only: a restart, or a new leader, forgets it.
	started   map[uint64]struct{}
	nextPID   uint16
	qos0      []*item // QoS 0 messages for the online client (never stored)
	qos0Bytes int64
}

// maxStarted bounds queue.started: past it, an entry's expiry removes it
// again as if it had not gone out.
const maxStarted = 1 << 16

// start records that the entry seq went out without a Sent mark (see
// live.started).
func (q *queue) start(seq uint64) {
	q.withLive()
	if q.started == nil {
		q.started = make(map[uint64]struct{})
	}
	if len(q.started) < maxStarted {
		q.started[seq] = struct{}{}
	}
}

// wasStarted reports whether seq is in started.
func (q *queue) wasStarted(seq uint64) bool {
	if q.live == nil {
		return false
	}
	_, ok := q.started[seq]
	return ok
}

// unstart removes seq from started: the entry left the queue or went out
// again.
func (q *queue) unstart(seq uint64) {
	if q.live != nil {
		delete(q.started, seq)
	}
}

// withLive makes the live state on first use. Every entry point that may
// reach it (Attach, DetachMarks, NextBatch, the acknowledgements, Offer
// to an online session, remove of a marked entry) calls it first.
func (q *queue) withLive() {
	if q.live == nil {
		q.live = &live{}
	}
}

// setInflight records it as inflight under pid, making the map on first
// use: an offline session that was never sent anything has none.
func (q *queue) setInflight(pid uint16, it *item) {
	if q.inflight == nil {
		q.inflight = make(map[uint16]*item)
	}
	q.inflight[pid] = it
}

// A Session is what the router delivers to.
var _ router.Subscriber = (*Session)(nil)

// Offer queues message m for delivery. Enqueue (and, for DropOldest,
// Dequeue) operations go into b, which the caller commits; see Result.
func (s *Session) Offer(m *store.Message, d router.Delivery, b *store.Batch) router.Result {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.readable(m) {
		s.drop(DropReadDenied, 1)
		return router.Result{Dropped: DropReadDenied}
	}
	if d.QoS == 0 && s.online {
		return s.offerQoS0(m, d)
	}
	if !s.online && (!s.persistent() || (d.QoS == 0 && !s.limits.QueueQoS0)) {
		s.drop(DropQoS0Offline, 1)
		return router.Result{Dropped: DropQoS0Offline}
	}
	size := m.Size()
	if r, ok := s.checkLimits(size, d, b); !ok {
		return r
	}
	return s.enqueue(m, d, size, b)
}

func (s *Session) offerQoS0(m *store.Message, d router.Delivery) router.Result {
	s.q.withLive()
	size := m.Size()
	if s.limits.QoS0Bytes > 0 && s.q.qos0Bytes+size > s.limits.QoS0Bytes {
		s.drop(DropSlowConsumer, 1)
		return router.Result{Dropped: DropSlowConsumer}
	}
	it := &item{e: store.QueueEntry{MessageID: m.ID, Retain: d.Retain, SubscriptionIDs: d.SubscriptionIDs},
		m: m, size: size, committed: true}
	s.q.qos0 = append(s.q.qos0, it)
	s.q.qos0Bytes += size
	s.wake()
	return router.Result{}
}

// checkLimits applies the queue limits, the global budget and the budget
// of the session's account to a message of size bytes; ok=false means the
// message is not queued (r says why).
func (s *Session) checkLimits(size int64, d router.Delivery, b *store.Batch) (r router.Result, ok bool) {
	if s.persistent() && !s.online {
		if d.StoreFull {
			if r, ok := s.atBudget(size, DropStoreFull, b); !ok {
				return r, false
			}
		}
		if s.q.acct.over(size) {
			if r, ok := s.atBudget(size, DropPolicyStoreFull, b); !ok {
				return r, false
			}
		}
	}
	if s.fits(size) {
		return router.Result{}, true
	}
	if s.purgeExpired(size, b); s.fits(size) {
		return router.Result{}, true
	}
	switch s.limits.Policy {
	case RejectPublish:
		s.drop(DropQuotaRejected, 1)
		return router.Result{Dropped: DropQuotaRejected, Rejected: true}, false
	case DropOldest:
		if s.limits.MaxBytes <= 0 || size <= s.limits.MaxBytes {
			if s.dropOldest(func() bool { return s.fits(size) }, DropQueueFull, b) {
				return router.Result{}, true
			}
		}
	}
	s.drop(DropQueueFull, 1)
	return router.Result{Dropped: DropQueueFull}, false
}

// atBudget handles a message of size bytes for an offline persistent
// session at a byte budget (the global store budget, or its account's):
// the message is refused, counted under reason, except under DropOldest,
// where the session makes room by dropping at least as many bytes of its
// own oldest entries, so a full budget keeps each queue's newest messages
// as the queue limits do. Other sessions' messages are never dropped.
func (s *Session) atBudget(size int64, reason string, b *store.Batch) (router.Result, bool) {
	floor := s.q.bytes - size
	if s.limits.Policy == DropOldest && s.dropOldest(func() bool { return s.q.bytes <= floor }, reason, b) {
		return router.Result{}, true
	}
	s.drop(reason, 1)
	return router.Result{Dropped: reason, Rejected: s.limits.Policy == RejectPublish}, false
}

func (s *Session) fits(size int64) bool {
	l := s.limits
	return (l.MaxMessages <= 0 || s.q.msgs+1 <= l.MaxMessages) &&
		(l.MaxBytes <= 0 || s.q.bytes+size <= l.MaxBytes)
}

// dropOldest drops Queued entries from the front of the queue, oldest
// first, each counted under reason, until done reports true; it returns
// false when the queue has nothing left to drop first. Inflight entries
// are never dropped.
//
// router.Entries whose Enqueue has not committed yet are dropped like the others:
// a publisher that pipelines a burst into an offline session has most of
// it uncommitted at any moment, and DropOldest must keep the newest
// messages whatever the timing. Their Dequeue goes into b, which the
// committer applies after the batch holding their Enqueue (batches commit
// in submission order); Settle then no longer finds them. A pending entry
// past the head is also remembered in skip, as a purge does, so that no
// refill reads it back between the two commits.
func (s *Session) dropOldest(done func() bool, reason string, b *store.Batch) bool {
	q := &s.q
	for !done() {
		if len(q.head) == 0 && !s.online && s.dropAhead(reason, b) {
			continue
		}
		if len(q.head) == 0 {
			s.refill()
		}
		if len(q.head) > 0 {
			it := s.popHead()
			s.remove(it, b)
			s.drop(reason, 1)
			continue
		}
		// The head is empty and refill read everything committed (unless a
		// read failed): the oldest entry left is the first pending one.
		if q.pending.len() == 0 || q.loadedSeq < q.watermark() {
			return false
		}
		p := q.pending.remove(0)
		s.dropPast(p.seq, p.size, reason, b)
	}
	return true
}

// enqueue assigns the next Seq to m and queues it.
func (s *Session) enqueue(m *store.Message, d router.Delivery, size int64, b *store.Batch) router.Result {
	q := &s.q
	caughtUp := q.loadedSeq == q.lastSeq && q.pending.len() == 0
	q.lastSeq++
	e := store.QueueEntry{Seq: q.lastSeq, MessageID: m.ID, QoS: d.QoS, Retain: d.Retain,
		SubscriptionIDs: d.SubscriptionIDs, State: store.Queued}
	q.add(1, size)
	q.noteExpiry(m.ExpiresAt)
	if !s.persistent() {
		q.loadedSeq = e.Seq
		q.pushHead(&item{e: e, m: m, size: size, committed: true})
		s.wake()
		return router.Result{}
	}
	pe := d.Entries.Next()
	*pe = e
	b.Enqueue(s.rec.ClientID, pe)
	// Offline sessions keep new entries only in the store: a broker with
	// many offline sessions holds no queued messages in memory (DropOldest
	// reads an offline queue's oldest entries without their messages, see
	// dropahead.go), and no item is allocated for them.
	if caughtUp && s.online && len(q.head) < s.headCap() && s.headFits(size) {
		q.loadedSeq = e.Seq
		q.pushHead(&item{e: e, m: m, size: size, stored: true})
		// A QoS 1 entry at the head of an online queue may go out beside
		// its commit, once the caller submitted the batch (Deliverable).
		return router.Result{Settle: e.Seq, Stored: true, Early: goesEarly(d.QoS)}
	}
	q.pending.push(pend{seq: e.Seq, size: size, exp: expNanos(m.ExpiresAt)})
	return router.Result{Settle: e.Seq, Stored: true}
}

// goesEarly reports whether an entry delivered at qos may be sent before
// its Enqueue commits: QoS 1 only (a QoS 2 PUBLISH waits for its Sent
// mark to be durable, and so for its Enqueue).
func goesEarly(qos byte) bool { return qos == 1 }

// Deliverable lets the entry seq, offered with Result.Early, be delivered
// before its Enqueue commits: its batch has been submitted, so the
// Dequeue of its acknowledgement and its Sent mark will commit after it.
// Only an entry that goesEarly is made so. An entry that left the head
// meanwhile (committed and delivered, dropped) is not looked for.
func (s *Session) Deliverable(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := &s.q
	for i := len(q.head) - 1; i >= 0; i-- {
		it := q.head[i]
		if it.e.Seq < seq {
			return
		}
		if it.e.Seq == seq {
			if !it.committed && goesEarly(it.e.QoS) {
				it.early = true
				s.wake()
			}
			return
		}
	}
}

// Settle reports whether the batch holding the Enqueue of seq committed.
// A failed entry is forgotten (it never reached the store).
func (s *Session) Settle(seq uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.settle(seq, ok) {
		s.wake()
	}
}

// SettleAll is Settle for several entries whose batches had the same
// outcome, in one call.
func (s *Session) SettleAll(seqs []uint64, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.q.settleFront(seqs, ok)
	found := n > 0
	for _, seq := range seqs[n:] {
		found = s.settle(seq, ok) || found
	}
	if found {
		s.wake()
	}
}

// settleFront settles the longest prefix of seqs that are the first
// pending entries, in order (the usual case: a group commit settles a
// session's entries in the order they were queued), in one step, and
// returns its length. It is what settle does for each of them.
func (q *queue) settleFront(seqs []uint64, ok bool) int {
	es := q.pending.items()
	n := 0
	for n < len(seqs) && n < len(es) && es[n].seq == seqs[n] {
		n++
	}
	if n == 0 {
		return 0
	}
	q.settledAfterPurge(seqs[n-1]) // the highest: seqs[:n] increase
	if !ok {
		for _, p := range es[:n] {
			q.add(-1, -p.size)
		}
	}
	q.pending.removeFront(n)
	return n
}

// settle settles the entry seq and reports whether the connection may
// have something new to send (the entry was found and not delivered).
func (s *Session) settle(seq uint64, ok bool) bool {
	q := &s.q
	q.settledAfterPurge(seq)
	if i := q.pending.find(seq); i >= 0 {
		p := q.pending.remove(i)
		if !ok {
			q.add(-1, -p.size)
		}
		return true
	}
	for i := len(q.head) - 1; i >= 0; i-- {
		it := q.head[i]
		if it.e.Seq != seq {
			continue
		}
		if ok {
			it.committed = true
		} else {
			q.head = append(q.head[:i], q.head[i+1:]...)
			q.headBytes -= it.size
			q.add(-1, -it.size)
		}
		return true
	}
	if q.live == nil {
		return false
	}
	for i, it := range q.early {
		if it.e.Seq != seq {
			continue
		}
		q.early = slices.Delete(q.early, i, i+1)
		if ok {
			it.committed = true
		} else {
			// Delivered, but its Enqueue never reached the store: the
			// client has it (QoS 1, at least once) and its
			// acknowledgement ends it with no Dequeue; no Sent mark is
			// written for it.
			it.stored, it.unmarked = false, false
		}
		// Already delivered: nothing new to send, so no wake-up (an
		// aged Sent mark goes with the next one), unless a QoS 2
		// delivery waited for the early entries to commit.
		return len(q.early) == 0 && q.marksHeld
	}
	return false
}

// pends is a queue's uncommitted entries, in Seq order. router.Entries settle in
// the order their Seqs were assigned (batches commit in order), so they
// nearly always leave from the front: the live entries are buf[off:], and
// the front is removed by advancing off, not by moving the others. The
// array and its offset are allocated on the first push: a session at rest
// that never queued anything holds one nil pointer, not 32 bytes.
type pends struct {
	a *pendArr
}

type pendArr struct {
	buf []pend
	off int
}

// keepPending is the most entries whose array an empty pends keeps:
// 10,000 offline sessions must not each keep room for the most entries
// they ever had uncommitted, but one that commits an entry at a time
// should not allocate for every one.
const keepPending = 4

func (p *pends) len() int {
	if p.a == nil {
		return 0
	}
	return len(p.a.buf) - p.a.off
}

// items returns the entries; the slice is valid until the next change.
func (p *pends) items() []pend {
	if p.a == nil {
		return nil
	}
	return p.a.buf[p.a.off:]
}

func (p *pends) push(e pend) {
	if p.a == nil {
		p.a = &pendArr{}
	}
	a := p.a
	if a.off > 0 && len(a.buf) == cap(a.buf) {
		// Full: drop the removed front instead of growing with it, in
		// place when at least half of the array is free.
		live := a.buf[a.off:]
		if 2*a.off >= len(a.buf) {
			n := copy(a.buf, live)
			clear(a.buf[n:])
			a.buf = a.buf[:n]
		} else {
			a.buf = append(make([]pend, 0, 2*len(live)), live...)
		}
		a.off = 0
	}
	a.buf = append(a.buf, e)
}

// set replaces the entries with es (which it may keep).
func (p *pends) set(es []pend) {
	if p.a == nil {
		if len(es) == 0 {
			return
		}
		p.a = &pendArr{}
	}
	p.a.buf, p.a.off = es, 0
}

// find returns the index of seq among the entries, or -1.
func (p *pends) find(seq uint64) int {
	es := p.items()
	if len(es) == 0 || seq < es[0].seq || seq > es[len(es)-1].seq {
		return -1
	}
	if es[0].seq == seq {
		return 0
	}
	i, found := slices.BinarySearchFunc(es, seq, func(e pend, seq uint64) int { return cmp.Compare(e.seq, seq) })
	if !found {
		return -1
	}
	return i
}

// remove removes and returns the entry at index i.
func (p *pends) remove(i int) pend {
	a := p.a
	e := a.buf[a.off+i]
	switch {
	case p.len() == 1:
		p.empty()
	case i == 0:
		a.off++
	default:
		a.buf = slices.Delete(a.buf, a.off+i, a.off+i+1)
	}
	return e
}

// removeFront removes the first n entries.
func (p *pends) removeFront(n int) {
	if n == p.len() {
		p.empty()
		return
	}
	p.a.off += n
}

// empty removes every entry, keeping a small array for the next ones and
// freeing a large one with its offset.
func (p *pends) empty() {
	if p.a == nil {
		return
	}
	if cap(p.a.buf) > keepPending {
		p.a = nil
		return
	}
	clear(p.a.buf)
	p.a.buf, p.a.off = p.a.buf[:0], 0
}

// watermark is the highest Seq up to which every stored entry is
// committed.
func (q *queue) watermark() uint64 {
	if q.pending.len() > 0 {
		return q.pending.items()[0].seq - 1
	}
	return q.lastSeq
}

func (s *Session) headCap() int {
	if !s.online {
		return offlineHead
	}
	return min(max(2*s.q.receiveMax, minHead), maxHead)
}

// refill reads the next Queued entries of a persistent session from the
// store into the head, up to the committed watermark. router.Entries still
// inflight from an earlier connection are skipped; it keeps reading until
// the head holds something or everything up to the watermark was seen.
func (s *Session) refill() {
	if !s.persistent() || s.env.Reader == nil {
		return
	}
	for s.refillOnce() && len(s.q.head) == 0 {
	}
}

// refillOnce reads one window, bounded by the head's room in messages and
// in bytes; it reports whether more may follow.
func (s *Session) refillOnce() bool {
	q := &s.q
	q.forgetAhead() // refill reads them again, with their messages
	want := s.headCap() - len(q.head)
	wm := q.watermark()
	if want <= 0 || q.loadedSeq >= wm || !s.headFits(1) {
		return false
	}
	want = s.readLimit(want)
	n, last, full := 0, q.loadedSeq, false
	err := s.env.Reader.ReadQueue(s.rec.ClientID, q.loadedSeq, want, func(e store.QueueEntry, m *store.Message) bool {
		if e.Seq > wm {
			return false
		}
		if q.refillable(e) {
			it := &item{e: e, m: m, size: m.Size(), committed: true, stored: true}
			if !s.headFits(it.size) {
				full = true
				return false
			}
			q.pushHead(it)
		}
		n, last = n+1, e.Seq
		return true
	})
	if err != nil {
		s.readFailed(err)
		return false
	}
	if !full && n < want {
		last = wm
	}
	q.loadedSeq = last
	return !full && n == want
}

// refillable reports whether a refill puts the stored entry e in the head
// (and DropOldest may drop it, dropahead.go): it is Queued, not inflight
// from an earlier connection, and not dequeued by a batch still to commit.
func (q *queue) refillable(e store.QueueEntry) bool {
	return e.State == store.Queued && !q.skipped(e.Seq)
}

// readFailed reports a failed read of the session's queue.
func (s *Session) readFailed(err error) {
	if s.env.Hooks.ReadError != nil {
		s.env.Hooks.ReadError(s.rec.ClientID, err)
	}
}

func (s *Session) popHead() *item {
	it := s.q.head[0]
	s.q.head[0] = nil
	s.q.head = s.q.head[1:]
	s.q.headBytes -= it.size
	return it
}

// remove forgets a queue entry that left the queue (delivered, dropped or
// expired): counters and, for stored entries, a Dequeue in b.
func (s *Session) remove(it *item, b *store.Batch) {
	s.q.add(-1, -it.size)
	s.q.unstart(it.e.Seq)
	if !it.stored {
		return
	}
	if it.markInBatch {
		s.q.withLive()
		s.q.later = append(s.q.later, it.e.Seq)
		return
	}
	b.Dequeue(s.rec.ClientID, it.e.Seq)
}

func (s *Session) wake() {
	if s.online && s.q.notify != nil { // online: Attach made the live state
		s.q.notify()
	}
}
