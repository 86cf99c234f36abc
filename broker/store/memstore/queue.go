package memstore

import (
	"sort"

	"github.com/bollard-io/bollard/broker/store"
)

// queue is one session's outbound queue: entries sorted by Seq. Removed
// entries are marked dead and dropped later by compact, so that a
// transaction can undo a removal and acknowledging the head stays cheap.
type queue struct {
	ents    []qent
	live    int
	bytes   int64
	lastSeq uint64
}

type qent struct {
	e    store.QueueEntry
	size int64
	dead bool
}

// index returns the position of the entry with seq, dead or alive, or -1.
func (q *queue) index(seq uint64) int {
	i := sort.Search(len(q.ents), func(i int) bool { return q.ents[i].e.Seq >= seq })
	if i < len(q.ents) && q.ents[i].e.Seq == seq {
		return i
	}
	return -1
}

// find returns the position of the live entry with seq, or -1.
func (q *queue) find(seq uint64) int {
	if i := q.index(seq); i >= 0 && !q.ents[i].dead {
		return i
	}
	return -1
}

// push appends e; the caller checked e.Seq > q.lastSeq.
func (q *queue) push(e store.QueueEntry, size int64) {
	q.ents = append(q.ents, qent{e: e, size: size})
	q.live++
	q.bytes += size
	q.lastSeq = e.Seq
}

// pop undoes the last push.
func (q *queue) pop(prevLast uint64) {
	last := q.ents[len(q.ents)-1]
	q.ents = q.ents[:len(q.ents)-1]
	q.live--
	q.bytes -= last.size
	q.lastSeq = prevLast
}

// kill marks the live entry at i removed.
func (q *queue) kill(i int) {
	q.ents[i].dead = true
	q.live--
	q.bytes -= q.ents[i].size
}

// revive undoes kill for the entry with seq.
func (q *queue) revive(seq uint64) {
	i := q.index(seq)
	q.ents[i].dead = false
	q.live++
	q.bytes += q.ents[i].size
}

// compact drops dead entries at the head, and everywhere once they
// outnumber the live ones. It runs only after a transaction succeeded.
func (q *queue) compact() {
	n := 0
	for n < len(q.ents) && q.ents[n].dead {
		n++
	}
	if n > 0 {
		clear(q.ents[:n])
		q.ents = q.ents[n:]
	}
	if dead := len(q.ents) - q.live; dead > 16 && dead > q.live {
		live := make([]qent, 0, q.live)
		for _, e := range q.ents {
			if !e.dead {
				live = append(live, e)
			}
		}
		q.ents = live
	}
}
