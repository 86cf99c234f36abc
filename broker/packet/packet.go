package packet

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"slices"
)

// Protocol levels as carried in the CONNECT packet.
const (
	V31  byte = 3 // MQTT 3.1, protocol name "MQIsdp"
	V311 byte = 4 // MQTT 3.1.1, protocol name "MQTT"
	V5   byte = 5 // MQTT 5.0, protocol name "MQTT"
)

// Type is the MQTT Control Packet type (the high nibble of the first byte).
type Type byte

// Control packet types (MQTT 5.0 section 2.1.2).
const (
	CONNECT     Type = 1
	CONNACK     Type = 2
	PUBLISH     Type = 3
	PUBACK      Type = 4
	PUBREC      Type = 5
	PUBREL      Type = 6
	PUBCOMP     Type = 7
	SUBSCRIBE   Type = 8
	SUBACK      Type = 9
	UNSUBSCRIBE Type = 10
	UNSUBACK    Type = 11
	PINGREQ     Type = 12
	PINGRESP    Type = 13
	DISCONNECT  Type = 14
	AUTH        Type = 15 // 5.0 only
)

var typeNames = [16]string{"RESERVED", "CONNECT", "CONNACK", "PUBLISH", "PUBACK",
	"PUBREC", "PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE",
	"UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}

// String returns the packet type name, for example "PUBLISH".
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", byte(t))
}

// Packet is one MQTT control packet: *Connect, *Connack, *Publish, *Puback,
// *Pubrec, *Pubrel, *Pubcomp, *Subscribe, *Suback, *Unsubscribe, *Unsuback,
// *Pingreq, *Pingresp, *Disconnect or *Auth. Every one of them also has
// AppendTo(dst []byte, version byte) ([]byte, error).
type Packet interface {
	Type() Type
}

// codec is what every packet type implements; the package's one dispatch
// point (newPacket) maps a Type to its codec.
type codec interface {
	Packet
	// bodyLen validates the packet for encoding and returns the length of
	// its variable header and payload (the Remaining Length).
	bodyLen(version byte) (int, error)
	// appendBody appends the variable header and payload; bodyLen has
	// validated the packet.
	appendBody(dst []byte, version byte) []byte
	// decode parses the body that followed a fixed header with these flags,
	// within the limits of o (nil: none beyond the protocol's).
	decode(flags byte, body []byte, version byte, o *DecodeOptions) error
}

// newPacket is the single dispatch point from a Type to its packet struct.
func newPacket(t Type) codec {
	switch t {
	case CONNECT:
		return &Connect{}
	case CONNACK:
		return &Connack{}
	case PUBLISH:
		return &Publish{}
	case PUBACK:
		return &Puback{}
	case PUBREC:
		return &Pubrec{}
	case PUBREL:
		return &Pubrel{}
	case PUBCOMP:
		return &Pubcomp{}
	case SUBSCRIBE:
		return &Subscribe{}
	case SUBACK:
		return &Suback{}
	case UNSUBSCRIBE:
		return &Unsubscribe{}
	case UNSUBACK:
		return &Unsuback{}
	case PINGREQ:
		return &Pingreq{}
	case PINGRESP:
		return &Pingresp{}
	case DISCONNECT:
		return &Disconnect{}
	case AUTH:
		return &Auth{}
	}
	return nil
}

// requiredFlags are the fixed header flags of every type but PUBLISH
// [MQTT-2.1.3-1]: 0010 for PUBREL, SUBSCRIBE and UNSUBSCRIBE, 0000 otherwise.
func requiredFlags(t Type) byte {
	switch t {
	case PUBREL, SUBSCRIBE, UNSUBSCRIBE:
		return 0x02
	}
	return 0
}

func validVersion(v byte) bool { return v == V31 || v == V311 || v == V5 }

// checkHeader validates the first byte of a packet before its body is read.
// spare, when not nil, holds packets to decode into (Reader.Recycle).
func checkHeader(hdr byte, version byte, spare *spares) (codec, error) {
	t, flags := Type(hdr>>4), hdr&0x0f
	if version != 0 && !validVersion(version) {
		return nil, errorf(UnsupportedProtocolVersion, "protocol version %d", version)
	}
	p := spare.take(t)
	if p == nil || (t == AUTH && version != 0 && version < V5) {
		return nil, malformed("reserved packet type %d", t)
	}
	if version == 0 && t != CONNECT {
		return nil, protocolErr("first packet is %s, not CONNECT [MQTT-3.1.0-1]", t)
	}
	if t == PUBLISH {
		return p, nil // flags checked by Publish.decode
	}
	want := requiredFlags(t)
	// MQTT 3.1 let PUBREL, SUBSCRIBE and UNSUBSCRIBE carry DUP on retry.
	if flags != want && (version != V31 || want == 0 || flags != want|0x08) {
		return nil, malformed("%s fixed header flags %04b, want %04b [MQTT-2.1.3-1]", t, flags, want)
	}
	return p, nil
}

// Decode decodes one whole packet (fixed header included) from buf, which
// must hold exactly that packet. version is the negotiated protocol level,
// or 0 before CONNECT (then only CONNECT is accepted; CONNECT is decoded
// whatever version is given, because it carries its own).
//
// The packet may alias buf. On error, Decode returns a nil Packet, except
// for a CONNECT whose protocol level was read: then the partially decoded
// *Connect comes back with the error, so a server can answer with a CONNACK
// in the client's version.
func Decode(buf []byte, version byte) (Packet, error) {
	return DecodeWith(buf, version, nil)
}

// DecodeWith is Decode within the limits of o; nil means none beyond the
// protocol's.
func DecodeWith(buf []byte, version byte, o *DecodeOptions) (Packet, error) {
	if len(buf) < 2 {
		return nil, malformed("packet of %d bytes is shorter than a fixed header", len(buf))
	}
	p, err := checkHeader(buf[0], version, nil)
	if err != nil {
		return nil, err
	}
	n, i, err := decodeVarint(buf, 1)
	if err != nil {
		return nil, annotate(err, "remaining length")
	}
	if int(n) != len(buf)-i {
		return nil, malformed("remaining length %d, but %d bytes follow", n, len(buf)-i)
	}
	return decodeBody(p, buf[0]&0x0f, buf[i:], version, o)
}

func decodeBody(p codec, flags byte, body []byte, version byte, o *DecodeOptions) (Packet, error) {
	if err := p.decode(flags, body, version, o); err != nil {
		if c, ok := p.(*Connect); ok && c.ProtocolVersion != 0 {
			return c, err
		}
		return nil, err
	}
	return p, nil
}

// ReadPacket reads one packet from r. version is as for Decode. maxSize is
// the largest whole packet (fixed header included) the caller accepts; 0
// means the protocol maximum, but servers should always set a limit.
//
// The size is checked against maxSize before the body is allocated and
// read: a larger packet yields an *Error with PacketTooLarge and its body is
// left unread (the connection should be closed). A clean end of stream
// before the first byte returns io.EOF; an end of stream inside a packet
// returns an error wrapping io.ErrUnexpectedEOF. Malformed packets yield an
// *Error carrying the Reason Code; see Decode for CONNECT errors.
func ReadPacket(r *bufio.Reader, version byte, maxSize uint32) (Packet, error) {
	return readPacket(r, version, maxSize, nil, nil)
}

func readPacket(r *bufio.Reader, version byte, maxSize uint32, o *DecodeOptions, spare *spares) (Packet, error) {
	hdr, err := r.ReadByte()
	if err != nil {
		return nil, err // io.EOF: the peer closed between packets
	}
	p, err := checkHeader(hdr, version, spare)
	if err != nil {
		return nil, err
	}
	n, size, err := readVarint(r)
	if err != nil {
		return nil, err
	}
	if total := uint64(1 + size + int(n)); maxSize > 0 && total > uint64(maxSize) {
		return nil, errorf(PacketTooLarge, "%s of %d bytes exceeds maximum packet size %d", p.Type(), total, maxSize)
	}
	body, err := readBody(r, int(n))
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("packet: reading %s body: %w", p.Type(), err)
	}
	return decodeBody(p, hdr&0x0f, body, version, o)
}

// bodyChunk is the largest body allocated before its bytes arrive.
const bodyChunk = 64 << 10

// readBody reads an n-byte body. Bodies above bodyChunk grow (doubling) as
// their bytes arrive, so the memory a peer makes us hold follows what it
// sends, not what it announces.
func readBody(r io.Reader, n int) ([]byte, error) {
	if n <= bodyChunk {
		body := make([]byte, n)
		_, err := io.ReadFull(r, body)
		return body, err
	}
	body := make([]byte, 0, bodyChunk)
	for len(body) < n {
		if len(body) == cap(body) {
			body = slices.Grow(body, min(n, 2*cap(body))-len(body))
		}
		k, err := io.ReadFull(r, body[len(body):min(n, cap(body))])
		body = body[:len(body)+k]
		if err != nil {
			return nil, err
		}
	}
	return body, nil
}

// readVarint reads the Remaining Length from r and returns it with its size.
func readVarint(r *bufio.Reader) (uint32, int, error) {
	var b [4]byte
	for n := range 4 {
		c, err := r.ReadByte()
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return 0, 0, fmt.Errorf("packet: reading remaining length: %w", err)
		}
		b[n] = c
		if c&0x80 == 0 {
			v, _, err := decodeVarint(b[:n+1], 0)
			if err != nil {
				return 0, 0, annotate(err, "remaining length")
			}
			return v, n + 1, nil
		}
	}
	return 0, 0, malformed("remaining length longer than four bytes")
}

// Reader reads packets from a buffered stream with a protocol version and
// size limit that the caller may change between reads (for example set
// Version after CONNECT, or MaxSize after configuration reload).
type Reader struct {
	R       *bufio.Reader
	Version byte   // negotiated protocol level; 0 before CONNECT
	MaxSize uint32 // largest accepted packet in bytes; 0: protocol maximum
	// Options bounds what one packet may make the decoder allocate; the
	// zero value sets no limit beyond the protocol's.
	Options DecodeOptions
	spare   spares // handed back by Recycle
}

// NewReader returns a Reader over r, buffering it unless it already is a
// *bufio.Reader.
func NewReader(r io.Reader, version byte, maxSize uint32) *Reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(r)
	}
	return &Reader{R: br, Version: version, MaxSize: maxSize}
}

// ReadPacket reads the next packet; see the function ReadPacket.
func (r *Reader) ReadPacket() (Packet, error) {
	return readPacket(r.R, r.Version, r.MaxSize, &r.Options, &r.spare)
}

// Recycle hands back p, returned by ReadPacket, for a later ReadPacket to
// decode into, so that a connection's stream of PUBLISH and
// acknowledgement packets allocates no packet struct each (with its
// Properties, several hundred bytes: most of a broker's garbage per
// message at one message in flight). The caller must hold no reference
// to p itself any more; what its fields refer to (the strings, the
// payload and other slices, the values of the pointer properties) stays
// the caller's, as it is never written again: p is zeroed here, and the
// next decode allocates its own. Other packet types are left to the GC.
func (r *Reader) Recycle(p Packet) {
	switch p := p.(type) {
	case *Publish:
		*p = Publish{}
	case *Puback:
		*p = Puback{}
	case *Pubrec:
		*p = Pubrec{}
	case *Pubrel:
		*p = Pubrel{}
	case *Pubcomp:
		*p = Pubcomp{}
	default:
		return
	}
	r.spare[p.Type()] = p.(codec)
}

// spares holds a zeroed packet per type, handed back by Reader.Recycle.
type spares [16]codec

// take returns a zeroed packet of type t: the spare one when there is
// one (s may be nil), else a new one (nil for a reserved type).
func (s *spares) take(t Type) codec {
	if s != nil && int(t) < len(s) {
		if p := s[t]; p != nil {
			s[t] = nil
			return p
		}
	}
	return newPacket(t)
}

// Append appends the encoding of p for the given protocol version to dst.
// It validates p first, so a packet that encodes also decodes.
func Append(dst []byte, p Packet, version byte) ([]byte, error) {
	c, n, err := prepare(p, version)
	if err != nil {
		return dst, err
	}
	if conn, ok := p.(*Connect); ok {
		version = conn.encodeVersion(version)
	}
	hdr := byte(c.Type())<<4 | requiredFlags(c.Type())
	if pub, ok := p.(*Publish); ok {
		hdr |= pub.flags()
	}
	orig := len(dst)
	dst = slices.Grow(dst, 1+VarintSize(uint32(n))+n)
	dst = appendVarint(append(dst, hdr), uint32(n))
	start := len(dst)
	dst = c.appendBody(dst, version)
	if len(dst)-start != n {
		return dst[:orig], fmt.Errorf("packet: internal error: %s body is %d bytes, sized %d", c.Type(), len(dst)-start, n)
	}
	return dst, nil
}

// prepare validates p for encoding and returns its codec and Remaining
// Length.
func prepare(p Packet, version byte) (codec, int, error) {
	c, ok := p.(codec)
	if !ok || c == nil {
		return nil, 0, fmt.Errorf("packet: cannot encode %T", p)
	}
	if conn, ok := p.(*Connect); ok {
		version = conn.encodeVersion(version)
	}
	if !validVersion(version) {
		return nil, 0, errorf(UnsupportedProtocolVersion, "cannot encode %s for protocol version %d", c.Type(), version)
	}
	if c.Type() == AUTH && version < V5 {
		return nil, 0, protocolErr("AUTH requires MQTT 5.0")
	}
	n, err := c.bodyLen(version)
	if err != nil {
		return nil, 0, err
	}
	if n > MaxVarint {
		return nil, 0, errorf(PacketTooLarge, "%s remaining length %d exceeds %d", c.Type(), n, MaxVarint)
	}
	return c, n, nil
}

// Size returns the encoded size of p in bytes, fixed header included, so a
// server can honour a client's Maximum Packet Size before sending. It
// validates p like Append.
func Size(p Packet, version byte) (int, error) {
	_, n, err := prepare(p, version)
	if err != nil {
		return 0, err
	}
	return 1 + VarintSize(uint32(n)) + n, nil
}

// Write encodes p for the given protocol version and writes it to w in a
// single Write call.
func Write(w io.Writer, p Packet, version byte) error {
	b, err := Append(nil, p, version)
	if err != nil {
		return err
	}
	if _, err := w.Write(b); err != nil {
		return fmt.Errorf("packet: writing %s: %w", p.Type(), err)
	}
	return nil
}
