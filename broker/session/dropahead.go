package session

import (
	"math"

	"github.com/bollard-io/bollard/broker/store"
)

// Dropping the oldest entries of an offline queue. A persistent session
// whose client is away keeps its queue in the store only (enqueue); once
// the queue is at its limit, DropOldest drops its oldest entry for every
// message offered, and a drop needs only the entry's Seq and its
// message's size. Reading the head back with its messages (refill) cost a
// Pebble snapshot, an iterator and a seek through level 0 per sixteen
// drops, and held sixteen items and their messages per full session
// (docs/durability.md, "Full queues"). An offline queue instead reads its
// next aheadMax Queued entries without their messages
// (Reader.ReadQueueEntries) into ahead, 8 bytes each, and drops them in
// order.
//
// ahead extends the head: its entries are the Queued, committed entries
// after loadedSeq that a refill would put in the head, and dropping one
// moves loadedSeq to it, so every entry up to loadedSeq is still in the
// head, inflight or gone. Whatever else reads or changes the store past
// loadedSeq forgets ahead first (forgetAhead): a refill, which reads the
// same entries with their messages; a purge, which may dequeue some of
// them; resetMemory (attach and detach), which reads the queue again from
// its start.

// aheadMax is the most entries ahead holds: 1 KiB a session (8 bytes an
// entry), less than the sixteen items (and their messages) the head of an
// offline queue held for DropOldest, for an eighth of the reads. Each read
// seeks through the store's level 0: in the cluster bench's full-queues
// row, 128 entries took 0.83x-0.96x the CPU per message of 64, and 256
// 0.92x-0.99x that of 128 for twice the memory.
const aheadMax = 128

// aheadEnt is an entry read ahead: its Seq less ahead.base, and its
// message's size. An entry that does not fit (a Seq 2^32 past the first
// of its read, a size over 4 GiB, which no MQTT packet has) ends the read.
type aheadEnt struct {
	off, size uint32
}

// ahead is what DropOldest drops next from an offline queue (see above):
// ents in Seq order from base, and to, the loadedSeq once they are all
// gone (the entries after the last of them up to to are inflight or
// skipped, as a refill would have passed over them).
type ahead struct {
	ents     []aheadEnt
	base, to uint64
}

// forgetAhead drops ahead; the entries stay in the store, after loadedSeq.
func (q *queue) forgetAhead() {
	if q.pg != nil {
		q.pg.ahead = ahead{}
	}
}

// dropAhead drops the oldest Queued entry of an offline persistent queue
// whose head is empty, counted under reason, its Dequeue into b; false
// when no committed entry is left to drop, a read failed, or the next
// entry does not fit an aheadEnt (refill then reads it into the head).
func (s *Session) dropAhead(reason string, b *store.Batch) bool {
	if !s.persistent() || s.env.Reader == nil {
		return false
	}
	q := &s.q
	a := &q.purging().ahead
	for len(a.ents) == 0 {
		if !s.readAhead(a) {
			return false
		}
	}
	seq, size := a.base+uint64(a.ents[0].off), int64(a.ents[0].size)
	a.ents = a.ents[1:]
	q.loadedSeq = seq
	if len(a.ents) == 0 {
		q.loadedSeq = a.to
		*a = ahead{}
	}
	q.add(-1, -size)
	q.unstart(seq)
	b.Dequeue(s.rec.ClientID, seq)
	s.drop(reason, 1)
	return true
}

// readAhead reads up to aheadMax entries after loadedSeq, up to the
// committed watermark, and keeps in a those a refill would put in the
// head. When it finds none it moves loadedSeq past what it read, as a
// refill does; it reports whether a holds entries or more may be read
// (false also for a first entry that does not fit an aheadEnt: the caller
// then refills the head instead).
func (s *Session) readAhead(a *ahead) bool {
	q := &s.q
	wm := q.watermark()
	if q.loadedSeq >= wm {
		return false
	}
	n, last, base, cut := 0, q.loadedSeq, uint64(0), false
	ents := make([]aheadEnt, 0, aheadMax)
	err := s.env.Reader.ReadQueueEntries(s.rec.ClientID, q.loadedSeq, aheadMax, func(e store.QueueEntry, size int64) bool {
		if e.Seq > wm {
			return false
		}
		if q.refillable(e) {
			if len(ents) == 0 {
				base = e.Seq
			}
			if e.Seq-base > math.MaxUint32 || size < 0 || size > math.MaxUint32 {
				cut = true
				return false
			}
			ents = append(ents, aheadEnt{off: uint32(e.Seq - base), size: uint32(size)})
		}
		n, last = n+1, e.Seq
		return true
	})
	if err != nil {
		s.readFailed(err)
		return false
	}
	if n < aheadMax && !cut {
		last = wm
	}
	if len(ents) == 0 {
		q.loadedSeq = last
		return !cut && last < wm
	}
	*a = ahead{ents: ents, base: base, to: last}
	return true
}
