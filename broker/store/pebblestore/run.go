package pebblestore

import (
	"sort"

	"github.com/bollard-io/bollard/broker/store"
)

// A session's queue is stored as runs: one q/ record holds the entries of
// one session that one commit appended, in Seq order (see format.go). A
// commit that changes or removes entries rewrites or deletes the runs
// holding them, once per run however many of its entries it touches.

const (
	// maxRunEntries and maxRunBytes bound a run: a commit appending more
	// writes several. Small runs cost a key each; large ones cost a larger
	// rewrite whenever one of their entries changes, which a consumer
	// acknowledging one message per commit pays on every message
	// (TestRunsBoundRewrites). 32 entries and 4 KiB queue and drain as
	// fast as 128 and 32 KiB did in the load benchmarks, with rewrites of
	// a few KiB instead of up to 32.
	maxRunEntries = 32
	maxRunBytes   = 4 << 10
)

// qent is a queue entry as stored: the entry, the Size of its message, and
// the encoded message itself when it is stored inline (its only reference).
type qent struct {
	store.QueueEntry
	size int64
	// mraw is the encoded message (without the value version byte) of an
	// inline entry; nil for an entry that refers to an m/ message.
	mraw []byte
}

// run is a decoded q/ record. first is the Seq in its key: at most the
// Seq of its first entry (entries removed from the front leave the key).
type run struct {
	first uint64
	ents  []qent
}

// last is the Seq of the last entry; 0 for an empty run.
func (r *run) last() uint64 {
	if len(r.ents) == 0 {
		return 0
	}
	return r.ents[len(r.ents)-1].Seq
}

// index returns the position of seq in r.ents, or -1.
func (r *run) index(seq uint64) int {
	i := sort.Search(len(r.ents), func(i int) bool { return r.ents[i].Seq >= seq })
	if i < len(r.ents) && r.ents[i].Seq == seq {
		return i
	}
	return -1
}

// clone copies r so that the copy's entries can change; messages and
// subscription IDs are never changed in place and stay shared.
func (r *run) clone() *run {
	return &run{first: r.first, ents: append([]qent(nil), r.ents...)}
}

// appendRun appends the encoding of the run of ents under key seq first.
func appendRun(dst []byte, first uint64, ents []qent) []byte {
	e := enc{b: append(dst, valueVersion)}
	e.uvarint(uint64(len(ents)))
	prev := first
	for i := range ents {
		q := &ents[i]
		appendQent(&e, prev, &q.QueueEntry, q.size, q.mraw, q.mraw != nil)
		prev = q.Seq
	}
	return e.b
}

// appendQent appends one entry of a run whose previous entry (or key) has
// seq prev; with inline, mraw is its encoded message.
func appendQent(e *enc, prev uint64, q *store.QueueEntry, size int64, mraw []byte, inline bool) {
	e.uvarint(q.Seq - prev)
	var flags byte
	if q.Retain {
		flags |= 1
	}
	if inline {
		flags |= 2
	}
	e.byte(flags)
	e.byte(q.QoS)
	e.byte(byte(q.State))
	e.uvarint(uint64(q.PacketID))
	e.uvarint(uint64(len(q.SubscriptionIDs)))
	for _, id := range q.SubscriptionIDs {
		e.uvarint(uint64(id))
	}
	e.uvarint(q.MessageID)
	e.uvarint(uint64(size))
	if inline {
		e.bytes(mraw)
	}
}

// runStats is what recovery needs from a run without decoding it into
// entries.
type runStats struct {
	n, shared   int64 // entries, and entries referring to m/ messages
	bytes       int64 // sum of entry sizes
	inlineBytes int64 // sum of inline entries' sizes
	last        uint64
	maxID       uint64 // highest message ID named
}

// decodeRun decodes the run under key (whose seq is first). With keep, v
// must not change afterwards: inline messages alias it. Without keep only
// the stats are computed and nothing is allocated.
func decodeRun(key []byte, first uint64, v []byte, keep bool) (*run, runStats, error) {
	d := newDec(v)
	var st runStats
	n := d.max(uint64(len(d.b)) / 7) // every entry takes at least 7 bytes
	var r *run
	if keep {
		r = &run{first: first, ents: make([]qent, 0, n)}
	}
	prev := first
	for i := uint64(0); i < n && d.err == nil; i++ {
		delta := d.uvarint()
		if i > 0 && delta == 0 || prev+delta < prev {
			d.fail(errRange)
			break
		}
		var q qent
		q.Seq = prev + delta
		prev = q.Seq
		flags := d.byte()
		q.Retain = flags&1 != 0
		q.QoS = d.maxByte(2)
		q.State = store.DeliveryState(d.maxByte(byte(store.Released)))
		q.PacketID = uint16(d.max(1<<16 - 1))
		if ns := d.max(uint64(len(d.b))); ns > 0 {
			if keep {
				q.SubscriptionIDs = make([]uint32, ns)
			}
			for j := range ns {
				id := uint32(d.max(1<<32 - 1))
				if keep {
					q.SubscriptionIDs[j] = id
				}
			}
		}
		q.MessageID = d.uvarint()
		q.size = int64(d.max(1 << 62))
		if flags&^3 != 0 {
			d.fail(errRange)
		}
		st.n++
		st.bytes += q.size
		st.last = q.Seq
		st.maxID = max(st.maxID, q.MessageID)
		if flags&2 != 0 {
			q.mraw = d.raw()
			if q.mraw == nil {
				q.mraw = []byte{}
			}
			st.inlineBytes += q.size
		} else {
			st.shared++
		}
		if keep {
			r.ents = append(r.ents, q)
		}
	}
	if err := d.done(); err != nil {
		return nil, runStats{}, corrupt(key, "queue run: %v", err)
	}
	if n == 0 {
		return nil, runStats{}, corrupt(key, "empty queue run")
	}
	return r, st, nil
}

// message decodes the inline message of q.
func (q *qent) message(key []byte) (*store.Message, error) {
	d := &dec{b: q.mraw}
	m := new(store.Message)
	decodeMessage(d, m)
	if err := d.done(); err != nil {
		return nil, corrupt(key, "inline message of seq %d: %v", q.Seq, err)
	}
	if m.ID != q.MessageID {
		return nil, corrupt(key, "inline message of seq %d has ID %d, entry names %d", q.Seq, m.ID, q.MessageID)
	}
	return m, nil
}

// appendInline appends the inline encoding of m (no value version byte)
// to dst.
func appendInline(dst []byte, m *store.Message) []byte {
	e := enc{b: dst}
	encodeMessage(&e, m)
	return e.b
}

// slab hands out zeroed values from chunks that are reused by the next
// batch after reset: the per-batch records of a commit (session copies,
// queue views, message counts) cost no allocation once the chunks exist.
// Pointers from get are valid until reset.
type slab[T any] struct {
	chunks [][]T
	c, i   int // next value: chunks[c][i]
}

const slabChunk = 256

func (s *slab[T]) get() *T {
	if s.c == len(s.chunks) {
		s.chunks = append(s.chunks, make([]T, slabChunk))
	}
	p := &s.chunks[s.c][s.i]
	if s.i++; s.i == slabChunk {
		s.c, s.i = s.c+1, 0
	}
	return p
}

// reset zeroes the values handed out since the last reset.
func (s *slab[T]) reset() {
	for j := 0; j < s.c; j++ {
		clear(s.chunks[j])
	}
	if s.c < len(s.chunks) {
		clear(s.chunks[s.c][:s.i])
	}
	s.c, s.i = 0, 0
}
