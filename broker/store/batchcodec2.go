package store

import (
	"encoding/binary"
	"fmt"
	"sync"
)

// Version 2 of the binary form: the same operations as version 1, written
// compactly for a fan-out (a message queued for many sessions, the bulk of
// an ingest group commit). Client IDs of queue operations are written once
// per batch, in a table; a message put and the queue entries that follow
// it for that message are one item; sequence numbers are deltas from the
// same session's previous one in the batch.
//
//	batch   = version(2) flags(1) uvarint(nops) uvarint(nids) string*nids item*
//	item    = kind(1) fields                       one operation (see below)
//	        | kindFanout(1) message uvarint(n) fan*n
//	                                               OpPutMessage, then n OpEnqueue of it
//	        | kindRepeat(1) message                OpPutMessage, then an OpEnqueue of it for
//	                                               each session of the last fan-out item
//	fan     = uvarint(client) varint(seq delta) eflags(1)
//	          [uint16 packetID: eflags&8] [uvarint(k) uvarint*k subscription IDs: eflags&16]
//	eflags  = QoS (bits 0-1) | 4 retain | 8 packetID | 16 subscription IDs | state << 5
//
// nops counts the decoded operations (a fan-out item is 1+n of them).
// Enqueue, UpdateEntry and Dequeue name their client by its index in the
// table and their Seq by a varint delta from the previous Seq of that
// client in the batch (0 before the first); every other kind is written as
// in version 1. A fan-out entry's MessageID is its message's. A repeat
// item queues its message for the sessions of the last fan-out item, in
// its order, each with the eflags it had there (without a packet ID or
// subscription IDs) and the Seq after that session's previous one: the
// next message of an ingest fan-out costs its message alone.
//
// A format entry (FormatEntry) is version(v) flagFormat: not a batch but
// the cluster's agreement that its members read version v from the next
// log entry on. A build that reads an earlier version only stops at it
// (ErrNewerFormat), as at any entry it cannot read.
const (
	kindFanout = 0x40
	kindRepeat = 0x41
)

// Fan-out entry flags.
const (
	efQoS      = 3
	efRetain   = 4
	efPacketID = 8
	efSubIDs   = 16
	efState    = 5 // shift
)

// FormatEntry is the log entry that raises a cluster's entry format to
// format (2 <= format <= BatchFormat).
func FormatEntry(format uint8) []byte { return []byte{format, flagFormat} }

// ParseFormatEntry reports whether data is a format entry, and which
// format it raises the cluster to (which may be above BatchFormat: a newer
// build's).
func ParseFormatEntry(data []byte) (uint8, bool) {
	if len(data) == 2 && data[0] >= 2 && data[1] == flagFormat {
		return data[0], true
	}
	return 0, false
}

// AppendBinaryFormat appends the binary form of b in the given version
// (1 or 2; every build reads 1) to dst.
func (b *Batch) AppendBinaryFormat(dst []byte, format int) ([]byte, error) {
	switch format {
	case 1:
		return b.AppendBinary(dst)
	case 2:
		return b.appendV2(dst)
	}
	return nil, fmt.Errorf("store: encode batch: version %d, this build writes 1 to %d", format, BatchFormat)
}

// MarshalBinaryFormat returns the binary form of b in the given version.
func (b *Batch) MarshalBinaryFormat(format int) ([]byte, error) {
	if format == 1 {
		return b.MarshalBinary()
	}
	return b.AppendBinaryFormat(nil, format)
}

// indexed reports whether version 2 names an operation's client by its
// index in the table.
func indexed(k OpKind) bool { return k == OpEnqueue || k == OpUpdateEntry || k == OpDequeue }

// v2Encoder is the state of one version 2 encoding, pooled.
type v2Encoder struct {
	idx   map[string]int32
	ids   []string
	seqs  []uint64 // previous Seq of each client in the batch
	opIdx []int32  // each operation's client index (indexed kinds)
	next  int      // where the next client is expected in ids (see index)
	fan   []fanned // the last fan-out item's sessions
}

// fanned is a session of a fan-out item: its client index and eflags.
type fanned struct {
	idx   int32
	flags byte
}

var v2Encoders = sync.Pool{New: func() any { return &v2Encoder{idx: make(map[string]int32)} }}

func (e *v2Encoder) release() {
	if len(e.ids) > maxInterned {
		return // let a huge table go
	}
	if cap(e.opIdx) > maxSlab || cap(e.fan) > maxSlab {
		e.opIdx, e.fan = nil, nil // nor keep a huge batch's room
	}
	clear(e.idx)
	clear(e.ids)
	e.ids, e.seqs, e.opIdx, e.next, e.fan = e.ids[:0], e.seqs[:0], e.opIdx[:0], 0, e.fan[:0]
	v2Encoders.Put(e)
}

// index returns id's index in the table, adding it. A fan-out names its
// sessions in the same order for every message, so the ID is first
// looked for just after the previous one found: a repeated sequence costs
// one comparison per ID, not a map lookup.
func (e *v2Encoder) index(id string) int32 {
	if e.next < len(e.ids) && e.ids[e.next] == id {
		e.next++
		return int32(e.next - 1)
	}
	if i, ok := e.idx[id]; ok {
		e.next = int(i) + 1
		return i
	}
	i := int32(len(e.ids))
	e.idx[id] = i
	e.ids = append(e.ids, id)
	e.seqs = append(e.seqs, 0)
	e.next = len(e.ids)
	return i
}

func (b *Batch) appendV2(dst []byte) ([]byte, error) {
	e := v2Encoders.Get().(*v2Encoder)
	defer e.release()
	size := 16
	if cap(e.opIdx) < len(b.Ops) {
		e.opIdx = make([]int32, len(b.Ops))
	}
	e.opIdx = e.opIdx[:len(b.Ops)]
	for i := range b.Ops {
		op := &b.Ops[i]
		if indexed(op.Kind) {
			n := len(e.ids)
			e.opIdx[i] = e.index(op.ClientID)
			if len(e.ids) > n {
				size += len(op.ClientID) + 2
			}
			size += 8
			if op.Entry != nil {
				size += 5 * len(op.Entry.SubscriptionIDs)
			}
			continue
		}
		size += 24 + len(op.ClientID) + len(op.Filter) + len(op.Topic)
		if m := op.Message; m != nil {
			size += 48 + len(m.Topic) + len(m.Payload) + len(m.Publisher)
		}
	}
	if dst == nil {
		dst = make([]byte, 0, size)
	}
	flags := byte(0)
	if b.NoSync {
		flags |= flagNoSync
	}
	dst = append(dst, 2, flags)
	dst = binary.AppendUvarint(dst, uint64(len(b.Ops)))
	dst = binary.AppendUvarint(dst, uint64(len(e.ids)))
	for _, id := range e.ids {
		dst = appendString(dst, id)
	}
	for i := 0; i < len(b.Ops); {
		op := &b.Ops[i]
		if op.Kind == OpPutMessage && op.Message != nil {
			if n := fanoutLen(b.Ops[i+1:], op.Message.ID); n > 0 {
				ops, idx := b.Ops[i+1:i+1+n], e.opIdx[i+1:i+1+n]
				if e.repeats(ops, idx) {
					dst = e.appendRepeat(dst, op.Message)
				} else {
					dst = e.appendFanout(dst, op.Message, ops, idx)
				}
				i += 1 + n
				continue
			}
		}
		var err error
		if dst, err = e.appendOp(dst, op, e.opIdx[i]); err != nil {
			return nil, fmt.Errorf("store: encode op %d: %w", i, err)
		}
		i++
	}
	return dst, nil
}

// fanoutLen is how many of ops, from the first, are Enqueues of message
// id that a fan-out item can hold.
func fanoutLen(ops []Op, id uint64) int {
	n := 0
	for n < len(ops) {
		op := &ops[n]
		if op.Kind != OpEnqueue || op.Entry == nil || op.Entry.MessageID != id ||
			op.Entry.QoS > efQoS || op.Entry.State > 7 {
			break
		}
		n++
	}
	return n
}

// eflags is a fan-out entry's flags byte.
func eflags(qe *QueueEntry) byte {
	f := qe.QoS | byte(qe.State)<<efState
	if qe.Retain {
		f |= efRetain
	}
	if qe.PacketID != 0 {
		f |= efPacketID
	}
	if len(qe.SubscriptionIDs) > 0 {
		f |= efSubIDs
	}
	return f
}

// repeats reports whether a repeat item holds ops (a fan-out's Enqueues,
// their clients at idx): the last fan-out item's sessions, in order, each
// with its flags there and the next Seq.
func (e *v2Encoder) repeats(ops []Op, idx []int32) bool {
	if len(ops) != len(e.fan) {
		return false
	}
	for i := range ops {
		f, qe := e.fan[i], ops[i].Entry
		if idx[i] != f.idx || eflags(qe) != f.flags || f.flags&(efPacketID|efSubIDs) != 0 || qe.Seq != e.seqs[f.idx]+1 {
			return false
		}
	}
	return true
}

func (e *v2Encoder) appendRepeat(dst []byte, m *Message) []byte {
	for _, f := range e.fan {
		e.seqs[f.idx]++
	}
	return appendMessage(append(dst, kindRepeat), m)
}

func (e *v2Encoder) appendFanout(dst []byte, m *Message, ops []Op, idx []int32) []byte {
	dst = appendMessage(append(dst, kindFanout), m)
	dst = binary.AppendUvarint(dst, uint64(len(ops)))
	e.fan = e.fan[:0]
	for i := range ops {
		op := &ops[i]
		dst = e.appendClientSeq(dst, idx[i], op.Entry.Seq)
		qe := op.Entry
		f := eflags(qe)
		e.fan = append(e.fan, fanned{idx: idx[i], flags: f})
		dst = append(dst, f)
		if qe.PacketID != 0 {
			dst = binary.BigEndian.AppendUint16(dst, qe.PacketID)
		}
		if len(qe.SubscriptionIDs) > 0 {
			dst = binary.AppendUvarint(dst, uint64(len(qe.SubscriptionIDs)))
			for _, id := range qe.SubscriptionIDs {
				dst = binary.AppendUvarint(dst, uint64(id))
			}
		}
	}
	return dst
}

// appendClientSeq appends a client's index and seq's delta from the
// client's previous one.
func (e *v2Encoder) appendClientSeq(dst []byte, i int32, seq uint64) []byte {
	dst = binary.AppendUvarint(dst, uint64(i))
	dst = binary.AppendVarint(dst, int64(seq-e.seqs[i])) // wraps: exact for every uint64
	e.seqs[i] = seq
	return dst
}

func (e *v2Encoder) appendOp(dst []byte, op *Op, i int32) ([]byte, error) {
	if !indexed(op.Kind) {
		return appendOp(dst, op)
	}
	dst = append(dst, byte(op.Kind))
	if op.Kind == OpDequeue {
		return e.appendClientSeq(dst, i, op.Seq), nil
	}
	if op.Entry == nil {
		return nil, fmt.Errorf("%v without an entry", op.Kind)
	}
	return appendEntryRest(e.appendClientSeq(dst, i, op.Entry.Seq), op.Entry), nil
}

// v2State is what decoding version 2 keeps: the batch's client table and
// each client's previous Seq. A Decoder reuses it.
type v2State struct {
	ids  []string
	seqs []uint64
	fan  []fanned // the last fan-out item's sessions
}

func (s *v2State) reset() {
	if cap(s.ids) > maxInterned {
		*s = v2State{}
		return
	}
	clear(s.ids)
	s.ids, s.seqs, s.fan = s.ids[:0], s.seqs[:0], s.fan[:0]
}

func (r *decoder) opsV2(b *Batch) error {
	s := r.v2
	s.reset()
	nids := r.count(1)
	for range nids {
		s.ids = append(s.ids, r.clientID())
		s.seqs = append(s.seqs, 0)
	}
	if r.err != nil {
		b.Ops = b.Ops[:0]
		return fmt.Errorf("store: decode batch: client table: %w", r.err)
	}
	n := len(b.Ops)
	for i := 0; i < n; {
		r.left = n - i
		k, err := r.itemV2(b.Ops[i:])
		if err != nil {
			b.Ops = b.Ops[:i]
			return fmt.Errorf("store: decode batch: op %d: %w", i, err)
		}
		i += k
	}
	return nil
}

// itemV2 decodes one item into ops (zero, as many as remain) and returns
// how many operations it held.
func (r *decoder) itemV2(ops []Op) (int, error) {
	kind := r.byte()
	switch {
	case r.err != nil:
		return 0, r.err
	case kind == kindFanout:
		return r.fanout(ops)
	case kind == kindRepeat:
		return r.repeat(ops)
	case !indexed(OpKind(kind)):
		r.off-- // the kind, read again as version 1's
		return 1, r.op(&ops[0])
	}
	op := &ops[0]
	op.Kind = OpKind(kind)
	_, id, seq := r.clientSeq()
	op.ClientID = id
	if op.Kind == OpDequeue {
		op.Seq = seq
		return 1, r.err
	}
	op.Entry = r.newEntry()
	op.Entry.Seq = seq
	r.entryRest(op.Entry)
	return 1, r.err
}

// clientSeq reads a client's index in the table and a Seq delta, and
// returns the index, the client ID and the Seq.
func (r *decoder) clientSeq() (int32, string, uint64) {
	s := r.v2
	i := r.uvarint()
	if r.err != nil {
		return 0, "", 0
	}
	if i >= uint64(len(s.ids)) {
		r.fail("client %d of a table of %d", i, len(s.ids))
		return 0, "", 0
	}
	v, n := binary.Varint(r.buf[r.off:])
	if n <= 0 {
		r.fail("bad varint")
		return 0, "", 0
	}
	r.off += n
	s.seqs[i] += uint64(v)
	return int32(i), s.ids[i], s.seqs[i]
}

// repeat decodes a repeat item (see kindRepeat) into ops.
func (r *decoder) repeat(ops []Op) (int, error) {
	s := r.v2
	m := r.message()
	if r.err != nil {
		return 0, r.err
	}
	n := len(s.fan)
	if n == 0 || n >= len(ops) {
		r.fail("repeat of %d entries, %d operations left", n, len(ops)-1)
		return 0, r.err
	}
	ops[0] = Op{Kind: OpPutMessage, Message: m}
	for j, f := range s.fan {
		r.left = len(ops) - j - 1
		s.seqs[f.idx]++
		e := r.newEntry()
		e.Seq, e.MessageID = s.seqs[f.idx], m.ID
		e.QoS, e.Retain, e.State = f.flags&efQoS, f.flags&efRetain != 0, DeliveryState(f.flags>>efState)
		op := &ops[j+1] // zero (see itemV2): set its fields, not the whole Op
		op.Kind, op.ClientID, op.Entry = OpEnqueue, s.ids[f.idx], e
	}
	return 1 + n, nil
}

func (r *decoder) fanout(ops []Op) (int, error) {
	m := r.message()
	n := r.count(3)
	if r.err != nil {
		return 0, r.err
	}
	if n == 0 || n >= len(ops) {
		r.fail("fan-out of %d entries, %d operations left", n, len(ops)-1)
		return 0, r.err
	}
	ops[0] = Op{Kind: OpPutMessage, Message: m}
	s := r.v2
	s.fan = s.fan[:0]
	for j := 1; j <= n && r.err == nil; j++ {
		r.left = len(ops) - j
		op := &ops[j]
		op.Kind = OpEnqueue
		i, id, seq := r.clientSeq()
		op.ClientID = id
		e := r.newEntry()
		op.Entry = e
		e.Seq, e.MessageID = seq, m.ID
		f := r.byte()
		s.fan = append(s.fan, fanned{idx: i, flags: f})
		e.QoS, e.Retain, e.State = f&efQoS, f&efRetain != 0, DeliveryState(f>>efState)
		if f&efPacketID != 0 {
			e.PacketID = r.uint16()
		}
		if f&efSubIDs != 0 {
			r.subscriptionIDs(e)
		}
	}
	return 1 + n, r.err
}
