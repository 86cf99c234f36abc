package session

import (
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// Purging expired messages. An expired message must not hold a place in
// the queue limits until delivery reaches it: when a message does not fit,
// Offer first purges expired Queued entries (purgeExpired), each counted as
// a DropExpired, and only then applies the overflow policy.
//
// A purge looks at the whole head in memory and at most purgeScan stored
// entries past it, read in bounded windows; a cursor (purgeCursor) makes
// the next purge continue where this one stopped, so a round covers the
// entries queued when it started over several offers. When a round
// completes, purgeAt is set to the earliest expiry of the surviving
// entries and of those queued since: no purge runs before it (enqueue
// lowers it for new messages). Inflight entries and
// entries whose Enqueue is not committed are never purged.
//
// The Dequeue of a stored entry past the head goes into the offer's batch;
// until that batch commits, the entry is still in the store, so its Seq is
// remembered in skip and refill passes over it. The committer finishes
// batches in order, so once an entry enqueued after the purge settles, the
// purge's batch is done and skip is cleared.

// purging is a queue's purge state. Its zero value is a queue that never
// purged: any time will do for the first purge.
type purging struct {
	purgeAt     time.Time           // no purge before; zero: any time
	purgeCursor uint64              // the next purge reads the store after it
	roundEnd    uint64              // lastSeq when this round started
	roundMin    time.Time           // earliest expiry seen in this round
	roundNew    time.Time           // earliest expiry queued since it started
	skip        map[uint64]struct{} // purged past the head, Dequeue not yet committed
	skipGen     uint64              // lastSeq at the last purge
	// ahead is what DropOldest drops next from an offline queue (see
	// dropahead.go).
	ahead ahead
}

// purging returns the purge state, making it on first use.
func (q *queue) purging() *purging {
	if q.pg == nil {
		q.pg = &purging{}
	}
	return q.pg
}

// purgeAt is the time before which no purge runs (zero: any time).
func (q *queue) purgeAt() time.Time {
	if q.pg == nil {
		return time.Time{}
	}
	return q.pg.purgeAt
}

// purgeScan bounds the stored entries one purge reads.
const purgeScan = 256

// purgeExpired removes expired Queued entries (see above) until a message
// of size bytes fits, in at most two passes of purgeScan stored entries: a
// round that ends while entries it saw early have expired since starts
// over at once.
func (s *Session) purgeExpired(size int64, b *store.Batch) {
	now := s.now()
	for pass := 0; pass < 2 && !s.fits(size) && !now.Before(s.q.purgeAt()); pass++ {
		s.purgePass(now, purgeScan, b)
	}
}

// purgePass purges the head and up to budget stored entries.
func (s *Session) purgePass(now time.Time, budget int, b *store.Batch) {
	q := s.q.purging()
	if q.purgeCursor == 0 { // a new round reads the entries queued so far
		q.roundEnd, q.roundMin, q.roundNew = s.q.lastSeq, time.Time{}, time.Time{}
	}
	first := s.purgeHead(now, b)
	done := true
	if s.persistent() && s.env.Reader != nil {
		var f time.Time
		f, done = s.purgeStore(now, budget, b)
		first = earliest(first, f)
	}
	q.roundMin = earliest(q.roundMin, first)
	if !done {
		return // the round goes on at the next pass
	}
	for _, p := range s.q.pending.items() {
		q.roundMin = earliest(q.roundMin, expTime(p.exp))
	}
	q.purgeAt = earliest(q.roundMin, q.roundNew)
	if q.purgeAt.IsZero() {
		q.purgeAt = now.Add(100 * 365 * 24 * time.Hour) // nothing expires
	}
	q.roundMin, q.purgeCursor = time.Time{}, 0
}

// purgeHead removes the committed expired entries of the head and returns
// the earliest expiry of the others.
func (s *Session) purgeHead(now time.Time, b *store.Batch) (first time.Time) {
	q := &s.q
	keep := q.head[:0]
	for _, it := range q.head {
		if q.wasStarted(it.e.Seq) {
			keep = append(keep, it) // went out: its expiry no longer counts
			continue
		}
		if it.committed && it.m.Expired(now) {
			q.headBytes -= it.size
			s.remove(it, b)
			s.drop(DropExpired, 1)
			continue
		}
		first = earliest(first, it.m.ExpiresAt)
		keep = append(keep, it)
	}
	clear(q.head[len(keep):])
	q.head = keep
	return first
}

// purgeStore reads up to budget committed entries past the head and the
// cursor, dequeues the expired ones, and reports the earliest expiry of the
// others and whether it reached the committed watermark.
func (s *Session) purgeStore(now time.Time, budget int, b *store.Batch) (first time.Time, done bool) {
	q, pg := &s.q, s.q.purging()
	q.forgetAhead() // a purge may dequeue them
	wm := min(q.watermark(), pg.roundEnd)
	from := max(q.loadedSeq, pg.purgeCursor)
	for total := 0; total < budget && from < wm; {
		n := s.scanLimit(budget - total)
		read := 0
		err := s.env.Reader.ReadQueue(s.rec.ClientID, from, n, func(e store.QueueEntry, m *store.Message) bool {
			if e.Seq > wm {
				return false
			}
			read, from = read+1, e.Seq
			if e.State != store.Queued || q.skipped(e.Seq) || q.wasStarted(e.Seq) {
				return true
			}
			if m.Expired(now) {
				s.purgeEntry(e.Seq, m.Size(), b)
			} else {
				first = earliest(first, m.ExpiresAt)
			}
			return true
		})
		if err != nil {
			s.readFailed(err)
			pg.purgeAt = now.Add(time.Second)
			return first, false
		}
		if read < n {
			from = wm
		}
		total += read
	}
	pg.purgeCursor = from
	return first, from >= wm
}

// scanLimit bounds one purge read like readLimit bounds a refill: about a
// byte window of messages.
func (s *Session) scanLimit(budget int) int {
	q := &s.q
	w := s.window()
	if w <= 0 || q.msgs <= 0 || q.bytes <= 0 {
		return budget
	}
	return int(min(int64(budget), max(w/max(q.bytes/q.msgs, 1), 1)))
}

// purgeEntry dequeues the expired stored entry seq, past the head.
func (s *Session) purgeEntry(seq uint64, size int64, b *store.Batch) {
	s.dropPast(seq, size, DropExpired, b)
}

// dropPast dequeues the stored entry seq, past the head, counted under
// reason, and skips it in refills until the Dequeue has committed.
func (s *Session) dropPast(seq uint64, size int64, reason string, b *store.Batch) {
	q := &s.q
	b.Dequeue(s.rec.ClientID, seq)
	q.add(-1, -size)
	q.unstart(seq)
	s.drop(reason, 1)
	pg := q.purging()
	if pg.skip == nil {
		pg.skip = make(map[uint64]struct{})
	}
	pg.skip[seq] = struct{}{}
	pg.skipGen = q.lastSeq
}

func (q *queue) skipped(seq uint64) bool {
	if q.pg == nil {
		return false
	}
	_, ok := q.pg.skip[seq]
	return ok
}

// settledAfterPurge clears skip once an entry enqueued after the last
// purge settled: every purge's batch is done.
func (q *queue) settledAfterPurge(seq uint64) {
	if q.pg != nil && len(q.pg.skip) > 0 && seq > q.pg.skipGen {
		clear(q.pg.skip)
	}
}

// noteExpiry lowers purgeAt for a new message, which the current round
// does not read.
func (q *queue) noteExpiry(exp time.Time) {
	if exp.IsZero() {
		return // changes neither purgeAt nor roundNew
	}
	pg := q.purging()
	if exp.Before(pg.purgeAt) {
		pg.purgeAt = exp
	}
	pg.roundNew = earliest(pg.roundNew, exp)
}

// earliest returns the earlier of two expiry times, zero meaning never.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
