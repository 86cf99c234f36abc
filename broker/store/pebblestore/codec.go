package pebblestore

import (
	"encoding/binary"
	"errors"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// errShort and friends describe why a value does not decode; callers wrap
// them with the key via corrupt.
var (
	errShort   = errors.New("value truncated")
	errVersion = errors.New("unknown value version")
	errTrail   = errors.New("trailing bytes")
	errRange   = errors.New("field out of range")
)

// enc appends fields to a value.
type enc struct{ b []byte }

func newEnc(capacity int) *enc {
	e := &enc{b: make([]byte, 0, capacity+1)}
	e.b = append(e.b, valueVersion)
	return e
}

func (e *enc) byte(v byte)      { e.b = append(e.b, v) }
func (e *enc) uvarint(v uint64) { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) str(s string)     { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(s []byte)   { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }

func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.byte(0)
		return
	}
	e.byte(1)
	e.b = binary.AppendVarint(e.b, t.UnixNano())
}

// dec reads fields from a value; after the first error every read returns
// a zero value and err keeps that error.
type dec struct {
	b   []byte
	err error
}

// newDec checks the version byte.
func newDec(b []byte) *dec {
	d := &dec{b: b}
	if len(b) == 0 {
		d.err = errShort
	} else if b[0] != valueVersion {
		d.err = errVersion
	} else {
		d.b = b[1:]
	}
	return d
}

func (d *dec) fail(err error) {
	if d.err == nil {
		d.err = err
	}
	d.b = nil
}

func (d *dec) byte() byte {
	if d.err != nil || len(d.b) < 1 {
		d.fail(errShort)
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(errShort)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// max returns a uvarint that must be <= limit.
func (d *dec) max(limit uint64) uint64 {
	v := d.uvarint()
	if v > limit {
		d.fail(errRange)
		return 0
	}
	return v
}

// raw returns the next length-prefixed field, aliasing the value.
func (d *dec) raw() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.fail(errShort)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.raw()) }

// bytes copies the next field; empty comes back as nil.
func (d *dec) bytes() []byte {
	v := d.raw()
	if len(v) == 0 {
		return nil
	}
	return append([]byte(nil), v...)
}

func (d *dec) time() time.Time {
	switch d.byte() {
	case 0:
		return time.Time{}
	case 1:
		v, n := binary.Varint(d.b)
		if n <= 0 {
			d.fail(errShort)
			return time.Time{}
		}
		d.b = d.b[n:]
		return time.Unix(0, v).UTC()
	}
	d.fail(errRange)
	return time.Time{}
}

// done reports the first error, or trailing bytes.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = errTrail
	}
	return d.err
}

func encodeMessage(e *enc, m *store.Message) {
	e.uvarint(m.ID)
	e.str(m.Publisher)
	e.str(m.Topic)
	e.bytes(m.Payload)
	e.byte(m.QoS)
	var flags byte
	if m.Retain {
		flags |= 1
	}
	if m.Props.PayloadFormat != nil {
		flags |= 2
	}
	e.byte(flags)
	if m.Props.PayloadFormat != nil {
		e.byte(*m.Props.PayloadFormat)
	}
	e.str(m.Props.ContentType)
	e.str(m.Props.ResponseTopic)
	e.bytes(m.Props.CorrelationData)
	e.uvarint(uint64(len(m.Props.UserProperties)))
	for _, p := range m.Props.UserProperties {
		e.str(p.Key)
		e.str(p.Value)
	}
	e.time(m.PublishedAt)
	e.time(m.ExpiresAt)
}

func decodeMessage(d *dec, m *store.Message) {
	m.ID = d.uvarint()
	m.Publisher = d.str()
	m.Topic = d.str()
	m.Payload = d.bytes()
	m.QoS = d.maxByte(2)
	flags := d.byte()
	m.Retain = flags&1 != 0
	if flags&2 != 0 {
		pf := d.byte()
		m.Props.PayloadFormat = &pf
	}
	m.Props.ContentType = d.str()
	m.Props.ResponseTopic = d.str()
	m.Props.CorrelationData = d.bytes()
	// Each property takes at least two bytes: check before allocating.
	if n := d.max(uint64(len(d.b) / 2)); n > 0 {
		m.Props.UserProperties = make([]store.UserProperty, n)
		for i := range m.Props.UserProperties {
			m.Props.UserProperties[i] = store.UserProperty{Key: d.str(), Value: d.str()}
		}
	}
	m.PublishedAt = d.time()
	m.ExpiresAt = d.time()
}

func (d *dec) maxByte(limit byte) byte { return byte(d.max(uint64(limit))) }

func encodeMessageValue(m *store.Message) []byte {
	return appendMessageValue(make([]byte, 0, 64+len(m.Payload)+len(m.Topic)), m)
}

// appendMessageValue appends the m/ value of m (with valueVersion) to dst.
func appendMessageValue(dst []byte, m *store.Message) []byte {
	e := enc{b: append(dst, valueVersion)}
	encodeMessage(&e, m)
	return e.b
}

func decodeMessageValue(key, v []byte) (*store.Message, error) {
	d := newDec(v)
	m := new(store.Message)
	decodeMessage(d, m)
	if err := d.done(); err != nil {
		return nil, corrupt(key, "message: %v", err)
	}
	return m, nil
}

func encodeSession(s *store.Session) []byte {
	e := newEnc(64)
	e.str(s.Principal)
	e.byte(s.ProtocolVersion)
	e.uvarint(uint64(s.ExpiryInterval))
	e.time(s.CreatedAt)
	e.time(s.DisconnectedAt)
	if s.Will == nil {
		e.byte(0)
		return e.b
	}
	e.byte(1)
	e.uvarint(uint64(s.Will.DelayInterval))
	encodeMessage(e, &s.Will.Message)
	return e.b
}

func decodeSession(key, v []byte) (store.Session, error) {
	s := store.Session{ClientID: string(key[len(pSession):])}
	d := newDec(v)
	s.Principal = d.str()
	s.ProtocolVersion = d.byte()
	s.ExpiryInterval = uint32(d.max(1<<32 - 1))
	s.CreatedAt = d.time()
	s.DisconnectedAt = d.time()
	switch d.byte() {
	case 0:
	case 1:
		w := &store.Will{DelayInterval: uint32(d.max(1<<32 - 1))}
		decodeMessage(d, &w.Message)
		s.Will = w
	default:
		d.fail(errRange)
	}
	if err := d.done(); err != nil {
		return store.Session{}, corrupt(key, "session: %v", err)
	}
	return s, nil
}

func encodeSubscription(s *store.Subscription) []byte {
	e := newEnc(8)
	e.byte(s.QoS)
	var flags byte
	if s.NoLocal {
		flags |= 1
	}
	if s.RetainAsPublished {
		flags |= 2
	}
	e.byte(flags)
	e.byte(s.RetainHandling)
	e.uvarint(uint64(s.ID))
	return e.b
}

func decodeSubscription(key []byte, filter string, v []byte) (store.Subscription, error) {
	d := newDec(v)
	s := store.Subscription{Filter: filter, QoS: d.byte()}
	flags := d.byte()
	s.NoLocal, s.RetainAsPublished = flags&1 != 0, flags&2 != 0
	s.RetainHandling = d.byte()
	s.ID = uint32(d.max(1<<32 - 1))
	if err := d.done(); err != nil {
		return store.Subscription{}, corrupt(key, "subscription: %v", err)
	}
	return s, nil
}

// appendRefCount appends the c/ value (with valueVersion) to dst.
func appendRefCount(dst []byte, refs, size int64) []byte {
	e := enc{b: append(dst, valueVersion)}
	e.uvarint(uint64(refs))
	e.uvarint(uint64(size))
	return e.b
}

func decodeRefCount(key, v []byte) (refs, size int64, err error) {
	d := newDec(v)
	refs = int64(d.max(1 << 62))
	size = int64(d.max(1 << 62))
	if err := d.done(); err != nil {
		return 0, 0, corrupt(key, "reference count: %v", err)
	}
	if refs == 0 {
		return 0, 0, corrupt(key, "reference count is zero")
	}
	return refs, size, nil
}

func encodeUvarint(v uint64) []byte {
	e := newEnc(binary.MaxVarintLen64)
	e.uvarint(v)
	return e.b
}

func decodeUvarint(key, v []byte) (uint64, error) {
	d := newDec(v)
	x := d.uvarint()
	if err := d.done(); err != nil {
		return 0, corrupt(key, "%v", err)
	}
	return x, nil
}

// inboundValue is the value of an i/ key.
var inboundValue = []byte{valueVersion}
