package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"time"
)

// The binary form of a Batch is what a replicated store puts in one log
// entry: every member decodes it and commits the same operations. It is
// versioned, self-delimiting and decoded strictly: a truncated, oversized or
// unknown form is an error wrapping ErrCorrupt, never a panic or an
// allocation that is not bounded by a multiple of the input's size. A
// version above BatchFormat is a newer build's: ErrNewerFormat. Version 1:
//
//	batch   = version(1) flags(1) uvarint(nops) op*
//	op      = kind(1) fields of the kind (see appendOp)
//	string  = uvarint(len) bytes
//	time    = 0 (zero time) | 1 varint(unix nanoseconds)
//
// Version 2 (batchcodec2.go) decodes to exactly the operations version 1
// does and is written only once every member of a cluster reads it.
const batchCodecVersion = 1

// BatchFormat is the highest version of the binary form this build reads
// and writes.
const BatchFormat = 2

const (
	flagNoSync = 1 << iota
	// flagFormat marks a format entry (FormatEntry), not a batch.
	flagFormat = 0x80
)

// AppendBinary appends the binary form of b to dst.
func (b *Batch) AppendBinary(dst []byte) ([]byte, error) {
	flags := byte(0)
	if b.NoSync {
		flags |= flagNoSync
	}
	dst = append(dst, batchCodecVersion, flags)
	dst = binary.AppendUvarint(dst, uint64(len(b.Ops)))
	for i := range b.Ops {
		var err error
		if dst, err = appendOp(dst, &b.Ops[i]); err != nil {
			return nil, fmt.Errorf("store: encode op %d: %w", i, err)
		}
	}
	return dst, nil
}

// MarshalBinary returns the binary form of b.
func (b *Batch) MarshalBinary() ([]byte, error) { return b.AppendBinary(make([]byte, 0, b.sizeHint())) }

// sizeHint estimates the size of b's binary form, so that encoding a
// large batch (a fan-out of many queue entries) allocates once.
func (b *Batch) sizeHint() int {
	n := 16
	for i := range b.Ops {
		op := &b.Ops[i]
		n += 24 + len(op.ClientID) + len(op.Filter) + len(op.Topic)
		if m := op.Message; m != nil {
			n += 48 + len(m.Topic) + len(m.Payload) + len(m.Publisher)
		}
	}
	return n
}

// UnmarshalBinary replaces b's operations with those encoded in data. The
// decoded records do not alias data.
func (b *Batch) UnmarshalBinary(data []byte) error {
	b.Ops = nil
	return decode(b, data, &decoder{buf: data, ids: &interner{}, v2: &v2State{}})
}

// A Decoder decodes the binary form of batches, reusing its memory from
// one batch to the next: the operations and the queue entries of a
// fan-out (one per session) come from slabs, and client IDs are interned
// across batches (at most maxInterned), so a member decoding the same
// sessions' entries over and over allocates neither. The decoded records
// do not alias the input. The zero value is ready to use; a Decoder is not
// safe for concurrent use.
type Decoder struct {
	ids  interner
	ops  slab[Op]
	ents slab[QueueEntry]
	v2   v2State // version 2's client ID table and sequence numbers, reused
}

// Decode replaces b's operations with those encoded in data, in memory of
// the Decoder: the records of every batch decoded since the last Reset
// stay valid until the next Reset. Appending to b.Ops copies them.
func (d *Decoder) Decode(b *Batch, data []byte) error {
	return decode(b, data, &decoder{buf: data, ids: &d.ids, d: d, v2: &d.v2})
}

// Reset lets the Decoder reuse the memory of the records it decoded,
// which must no longer be used (a store keeps no reference to a batch's
// records after its commit). The Decoder keeps at most maxSlab operations
// and as many queue entries, about 5 MB: the fan-outs of a few groups of
// publishes, as a cluster follower applies them in one go (new arrays for
// every call were 5-10% of its CPU).
func (d *Decoder) Reset() {
	d.v2.reset()
	d.ops.reset()
	d.ents.reset()
}

// maxSlab bounds the operations, and the queue entries, a Decoder keeps
// between batches.
const maxSlab = 1 << 15

// A slab hands out zero elements from one array and takes them all back
// at once (reset). When what was handed out since the last reset filled
// more than one array, the next array holds it all and a quarter more, so
// that a user taking about the same amount again allocates no more.
type slab[T any] struct {
	buf     []T // handed out since reset, then room
	spilled int // handed out since reset from arrays a larger one replaced
}

// take returns n zero elements, which nothing else is handed; appending
// to them copies them.
func (s *slab[T]) take(n int) []T {
	if cap(s.buf)-len(s.buf) < n {
		// The elements handed out keep the old array.
		s.spilled += len(s.buf)
		s.buf = make([]T, 0, max(n, 2*cap(s.buf), chunk))
	}
	i := len(s.buf)
	s.buf = s.buf[:i+n]
	return s.buf[i : i+n : i+n]
}

// reset takes back every element handed out; it keeps at most maxSlab.
func (s *slab[T]) reset() {
	used := s.spilled + len(s.buf)
	s.spilled = 0
	switch {
	case used > maxSlab:
		s.buf = nil
	case used > cap(s.buf):
		s.buf = make([]T, 0, min(used+used/4, maxSlab))
	default:
		clear(s.buf)
		s.buf = s.buf[:0]
	}
}

// chunk is the fewest records the decoder allocates at once.
const chunk = 128

func decode(b *Batch, data []byte, r *decoder) error {
	v := r.byte()
	switch {
	case r.err != nil:
	case v > BatchFormat:
		return fmt.Errorf("store: decode batch: %w: version %d, this build reads %d at most", ErrNewerFormat, v, BatchFormat)
	case v != batchCodecVersion && v != 2:
		return fmt.Errorf("store: decode batch: %w: version %d", ErrCorrupt, v)
	}
	flags := r.byte()
	n := r.count(1)
	if r.err != nil {
		return fmt.Errorf("store: decode batch: %w", r.err)
	}
	if flags&^flagNoSync != 0 {
		return fmt.Errorf("store: decode batch: %w: unknown flags %#x", ErrCorrupt, flags)
	}
	b.NoSync = flags&flagNoSync != 0
	switch {
	case r.d != nil:
		b.Ops = r.d.ops.take(n)
	case cap(b.Ops) < n:
		b.Ops = make([]Op, n)
	default:
		b.Ops = b.Ops[:n]
		clear(b.Ops)
	}
	var err error
	if v == 2 {
		err = r.opsV2(b)
	} else {
		err = r.opsV1(b)
	}
	if err != nil {
		return err
	}
	if r.off != len(r.buf) {
		return fmt.Errorf("store: decode batch: %w: %d trailing bytes", ErrCorrupt, len(r.buf)-r.off)
	}
	return nil
}

func (r *decoder) opsV1(b *Batch) error {
	n := len(b.Ops)
	for i := 0; i < n; i++ {
		r.left = n - i
		if err := r.op(&b.Ops[i]); err != nil {
			b.Ops = b.Ops[:i]
			return fmt.Errorf("store: decode batch: op %d: %w", i, err)
		}
	}
	return nil
}

func appendOp(dst []byte, op *Op) ([]byte, error) {
	dst = append(dst, byte(op.Kind))
	switch op.Kind {
	case OpPutSession:
		if op.Session == nil {
			return nil, errors.New("PutSession without a session")
		}
		return appendSession(dst, op.Session), nil
	case OpDeleteSession:
		return appendString(dst, op.ClientID), nil
	case OpPutSubscription:
		if op.Subscription == nil {
			return nil, errors.New("PutSubscription without a subscription")
		}
		return appendSubscription(appendString(dst, op.ClientID), op.Subscription), nil
	case OpDeleteSubscription:
		return appendString(appendString(dst, op.ClientID), op.Filter), nil
	case OpPutMessage, OpPutRetained:
		if op.Message == nil {
			return nil, fmt.Errorf("%v without a message", op.Kind)
		}
		return appendMessage(dst, op.Message), nil
	case OpEnqueue, OpUpdateEntry:
		if op.Entry == nil {
			return nil, fmt.Errorf("%v without an entry", op.Kind)
		}
		return appendEntry(appendString(dst, op.ClientID), op.Entry), nil
	case OpDequeue:
		return binary.AppendUvarint(appendString(dst, op.ClientID), op.Seq), nil
	case OpPutInboundQoS2, OpDeleteInboundQoS2:
		return binary.BigEndian.AppendUint16(appendString(dst, op.ClientID), op.PacketID), nil
	case OpDeleteRetained:
		return appendString(dst, op.Topic), nil
	}
	return nil, fmt.Errorf("unknown kind %v", op.Kind)
}

func appendString(dst []byte, s string) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(s))), s...)
}

func appendBytes(dst, p []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(p))), p...)
}

func appendTime(dst []byte, t time.Time) []byte {
	if t.IsZero() {
		return append(dst, 0)
	}
	return binary.AppendVarint(append(dst, 1), t.UnixNano())
}

func appendBools(dst []byte, bs ...bool) []byte {
	var v byte
	for i, b := range bs {
		if b {
			v |= 1 << i
		}
	}
	return append(dst, v)
}

func appendSession(dst []byte, s *Session) []byte {
	dst = appendString(dst, s.ClientID)
	dst = appendString(dst, s.Principal)
	dst = append(dst, s.ProtocolVersion)
	dst = binary.AppendUvarint(dst, uint64(s.ExpiryInterval))
	dst = appendTime(dst, s.CreatedAt)
	dst = appendTime(dst, s.DisconnectedAt)
	if s.Will == nil {
		return append(dst, 0)
	}
	dst = appendMessage(append(dst, 1), &s.Will.Message)
	return binary.AppendUvarint(dst, uint64(s.Will.DelayInterval))
}

func appendSubscription(dst []byte, s *Subscription) []byte {
	dst = appendString(dst, s.Filter)
	dst = append(dst, s.QoS, s.RetainHandling)
	dst = appendBools(dst, s.NoLocal, s.RetainAsPublished)
	return binary.AppendUvarint(dst, uint64(s.ID))
}

func appendMessage(dst []byte, m *Message) []byte {
	dst = binary.AppendUvarint(dst, m.ID)
	dst = appendString(dst, m.Publisher)
	dst = appendString(dst, m.Topic)
	dst = appendBytes(dst, m.Payload)
	dst = append(dst, m.QoS)
	p := &m.Props
	dst = appendBools(dst, m.Retain, p.PayloadFormat != nil, p.CorrelationData != nil)
	if p.PayloadFormat != nil {
		dst = append(dst, *p.PayloadFormat)
	}
	dst = appendString(dst, p.ContentType)
	dst = appendString(dst, p.ResponseTopic)
	if p.CorrelationData != nil {
		dst = appendBytes(dst, p.CorrelationData)
	}
	dst = binary.AppendUvarint(dst, uint64(len(p.UserProperties)))
	for _, up := range p.UserProperties {
		dst = appendString(appendString(dst, up.Key), up.Value)
	}
	dst = appendTime(dst, m.PublishedAt)
	return appendTime(dst, m.ExpiresAt)
}

func appendEntry(dst []byte, e *QueueEntry) []byte {
	return appendEntryRest(binary.AppendUvarint(dst, e.Seq), e)
}

// appendEntryRest appends e's fields after its Seq.
func appendEntryRest(dst []byte, e *QueueEntry) []byte {
	dst = binary.AppendUvarint(dst, e.MessageID)
	dst = append(dst, e.QoS, byte(e.State))
	dst = appendBools(dst, e.Retain)
	dst = binary.BigEndian.AppendUint16(dst, e.PacketID)
	dst = binary.AppendUvarint(dst, uint64(len(e.SubscriptionIDs)))
	for _, id := range e.SubscriptionIDs {
		dst = binary.AppendUvarint(dst, uint64(id))
	}
	return dst
}

// decoder reads the binary form; the first error sticks and every later
// read returns zero values. It moves through buf by the offset off (an
// integer: moving a slice would cost a GC write barrier per field read
// while the collector runs).
type decoder struct {
	buf []byte
	off int
	err error
	// ents are decoded queue entries not handed out yet: they are
	// allocated a chunk at a time (a fan-out batch holds one per session),
	// at most as many as there are operations left to decode; or, with a
	// Decoder d, they come from its slab.
	ents []QueueEntry
	d    *Decoder
	left int // operations left to decode, counting the current one
	ids  *interner
	v2   *v2State
}

// interner interns the client IDs of queue operations: a group commit
// names each session once per message it queues for it, and names them in
// the same order for every message of a fan-out. IDs are kept in the
// order first seen (at most maxInterned); next is where the ID after the
// last one found is expected, so that a repeated sequence costs one
// comparison per ID and one map lookup per message.
type interner struct {
	ids   map[string]int32 // index in order
	order []string
	next  int
}

// maxInterned bounds the client IDs one interner keeps.
const maxInterned = 4096

// clientID reads a client ID, the same string for the same ID.
func (r *decoder) clientID() string {
	n := r.count(1)
	if r.err != nil {
		return ""
	}
	raw := r.buf[r.off : r.off+n]
	r.off += n
	in := r.ids
	if in.next < len(in.order) && in.order[in.next] == string(raw) {
		in.next++
		return in.order[in.next-1]
	}
	if i, ok := in.ids[string(raw)]; ok {
		in.next = int(i) + 1
		return in.order[i]
	}
	s := string(raw)
	if len(in.order) < maxInterned {
		if in.ids == nil {
			in.ids = make(map[string]int32)
		}
		in.ids[s] = int32(len(in.order))
		in.order = append(in.order, s)
		in.next = len(in.order)
	}
	return s
}

func (r *decoder) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrCorrupt}, args...)...)
	}
	r.off = len(r.buf)
}

func (r *decoder) byte() byte {
	if r.err != nil {
		return 0
	}
	if r.off >= len(r.buf) {
		r.fail("truncated")
		return 0
	}
	v := r.buf[r.off]
	r.off++
	return v
}

func (r *decoder) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.buf[r.off:])
	if n <= 0 {
		r.fail("bad uvarint")
		return 0
	}
	r.off += n
	return v
}

func (r *decoder) uint32() uint32 {
	v := r.uvarint()
	if v > math.MaxUint32 {
		r.fail("value %d out of range", v)
		return 0
	}
	return uint32(v)
}

func (r *decoder) uint16() uint16 {
	if r.err != nil {
		return 0
	}
	if len(r.buf)-r.off < 2 {
		r.fail("truncated")
		return 0
	}
	v := binary.BigEndian.Uint16(r.buf[r.off:])
	r.off += 2
	return v
}

// count reads an element count; each element takes at least min bytes,
// so a count the remaining input cannot hold is refused before anything
// is allocated for it.
func (r *decoder) count(min int) int {
	v := r.uvarint()
	if r.err == nil && v > uint64((len(r.buf)-r.off)/min) {
		r.fail("count %d exceeds the input", v)
		return 0
	}
	return int(v)
}

func (r *decoder) bytes() []byte {
	n := r.count(1)
	if r.err != nil {
		return nil
	}
	p := append([]byte(nil), r.buf[r.off:r.off+n]...)
	r.off += n
	return p
}

func (r *decoder) string() string {
	n := r.count(1)
	if r.err != nil {
		return ""
	}
	s := string(r.buf[r.off : r.off+n])
	r.off += n
	return s
}

func (r *decoder) bools() byte { return r.byte() }

func (r *decoder) time() time.Time {
	switch r.byte() {
	case 0:
		return time.Time{}
	case 1:
		v, n := binary.Varint(r.buf[r.off:])
		if n <= 0 {
			r.fail("bad time")
			return time.Time{}
		}
		r.off += n
		return time.Unix(0, v)
	}
	r.fail("bad time tag")
	return time.Time{}
}

// op decodes one operation into op, which is zero.
func (r *decoder) op(op *Op) error {
	op.Kind = OpKind(r.byte())
	switch op.Kind {
	case OpPutSession:
		op.Session = r.session()
		op.ClientID = op.Session.ClientID
	case OpDeleteSession:
		op.ClientID = r.string()
	case OpPutSubscription:
		op.ClientID = r.string()
		op.Subscription = r.subscription()
	case OpDeleteSubscription:
		op.ClientID = r.string()
		op.Filter = r.string()
	case OpPutMessage:
		op.Message = r.message()
	case OpPutRetained:
		op.Message = r.message()
		op.Topic = op.Message.Topic
	case OpEnqueue, OpUpdateEntry:
		op.ClientID = r.clientID()
		op.Entry = r.entry()
	case OpDequeue:
		op.ClientID = r.clientID()
		op.Seq = r.uvarint()
	case OpPutInboundQoS2, OpDeleteInboundQoS2:
		op.ClientID = r.string()
		op.PacketID = r.uint16()
	case OpDeleteRetained:
		op.Topic = r.string()
	default:
		if r.err == nil {
			r.fail("unknown op kind %d", op.Kind)
		}
	}
	return r.err
}

func (r *decoder) session() *Session {
	s := &Session{
		ClientID:        r.string(),
		Principal:       r.string(),
		ProtocolVersion: r.byte(),
		ExpiryInterval:  r.uint32(),
		CreatedAt:       r.time(),
		DisconnectedAt:  r.time(),
	}
	switch r.byte() {
	case 0:
	case 1:
		s.Will = &Will{Message: *r.message(), DelayInterval: r.uint32()}
	default:
		r.fail("bad will tag")
	}
	return s
}

func (r *decoder) subscription() *Subscription {
	s := &Subscription{Filter: r.string(), QoS: r.byte(), RetainHandling: r.byte()}
	f := r.bools()
	s.NoLocal, s.RetainAsPublished = f&1 != 0, f&2 != 0
	s.ID = r.uint32()
	return s
}

func (r *decoder) message() *Message {
	m := &Message{ID: r.uvarint(), Publisher: r.string(), Topic: r.string(), Payload: r.bytes(), QoS: r.byte()}
	f := r.bools()
	m.Retain = f&1 != 0
	if f&2 != 0 {
		v := r.byte()
		m.Props.PayloadFormat = &v
	}
	m.Props.ContentType = r.string()
	m.Props.ResponseTopic = r.string()
	if f&4 != 0 {
		m.Props.CorrelationData = append([]byte{}, r.bytes()...) // present, maybe empty
	}
	if n := r.count(2); n > 0 {
		m.Props.UserProperties = make([]UserProperty, n)
		for i := range m.Props.UserProperties {
			m.Props.UserProperties[i] = UserProperty{Key: r.string(), Value: r.string()}
		}
	}
	m.PublishedAt = r.time()
	m.ExpiresAt = r.time()
	return m
}

func (r *decoder) entry() *QueueEntry {
	e := r.newEntry()
	e.Seq = r.uvarint()
	r.entryRest(e)
	return e
}

// newEntry returns a zero queue entry to decode into.
func (r *decoder) newEntry() *QueueEntry {
	if d := r.d; d != nil {
		return &d.ents.take(1)[0]
	}
	if len(r.ents) == 0 {
		r.ents = make([]QueueEntry, min(max(r.left, 1), chunk))
	}
	e := &r.ents[0]
	r.ents = r.ents[1:]
	return e
}

// entryRest decodes an entry's fields after its Seq.
func (r *decoder) entryRest(e *QueueEntry) {
	e.MessageID, e.QoS, e.State = r.uvarint(), r.byte(), DeliveryState(r.byte())
	e.Retain = r.bools()&1 != 0
	e.PacketID = r.uint16()
	r.subscriptionIDs(e)
}

func (r *decoder) subscriptionIDs(e *QueueEntry) {
	if n := r.count(1); n > 0 {
		e.SubscriptionIDs = make([]uint32, n)
		for i := range e.SubscriptionIDs {
			e.SubscriptionIDs[i] = r.uint32()
		}
	}
}
