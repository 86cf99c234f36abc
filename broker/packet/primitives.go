package packet

import (
	"strings"
	"unicode/utf8"
)

// MaxVarint is the largest value a Variable Byte Integer can hold (four
// bytes), and so the largest Remaining Length of any packet.
const MaxVarint = 268_435_455

// maxString is the largest UTF-8 string or binary field (two-byte length).
const maxString = 65_535

// The decoding helpers below are bounds-checked: each reads one primitive
// from b at offset i and returns (value, next offset, error). A read past
// the end of b is a Malformed Packet: the Remaining Length promised bytes the
// packet does not contain.

func decodeByte(b []byte, i int) (byte, int, error) {
	if i >= len(b) {
		return 0, i, malformed("truncated at byte %d", i)
	}
	return b[i], i + 1, nil
}

func decodeUint16(b []byte, i int) (uint16, int, error) {
	if i+2 > len(b) {
		return 0, i, malformed("truncated two byte integer at %d", i)
	}
	return uint16(b[i])<<8 | uint16(b[i+1]), i + 2, nil
}

func decodeUint32(b []byte, i int) (uint32, int, error) {
	if i+4 > len(b) {
		return 0, i, malformed("truncated four byte integer at %d", i)
	}
	v := uint32(b[i])<<24 | uint32(b[i+1])<<16 | uint32(b[i+2])<<8 | uint32(b[i+3])
	return v, i + 4, nil
}

// decodeVarint reads a Variable Byte Integer (section 1.5.5): at most four
// bytes, in the minimum number of bytes [MQTT-1.5.5-1].
func decodeVarint(b []byte, i int) (uint32, int, error) {
	var v uint32
	for n := 0; n < 4; n++ {
		if i >= len(b) {
			return 0, i, malformed("truncated variable byte integer")
		}
		c := b[i]
		i++
		v |= uint32(c&0x7f) << (7 * n)
		if c&0x80 == 0 {
			if n > 0 && c == 0 {
				return 0, i, malformed("variable byte integer not minimal [MQTT-1.5.5-1]")
			}
			return v, i, nil
		}
	}
	return 0, i, malformed("variable byte integer longer than four bytes")
}

// decodeBinary reads Binary Data (section 1.5.6): a two byte length and that
// many bytes. The result aliases b and is never nil, so a present but empty
// field differs from an absent one.
func decodeBinary(b []byte, i int) ([]byte, int, error) {
	n, i, err := decodeUint16(b, i)
	if err != nil {
		return nil, i, err
	}
	end := i + int(n)
	if end > len(b) {
		return nil, i, malformed("binary data of %d bytes overruns packet", n)
	}
	return b[i:end:end], end, nil
}

// decodeString reads a UTF-8 Encoded String (section 1.5.4) and validates it.
func decodeString(b []byte, i int) (string, int, error) {
	raw, next, err := decodeBinary(b, i)
	if err != nil {
		return "", i, err
	}
	s := string(raw)
	if err := validString(s); err != nil {
		return "", i, err
	}
	return s, next, nil
}

// decodeStringPair reads a UTF-8 String Pair (section 1.5.7) [MQTT-1.5.7-1].
func decodeStringPair(b []byte, i int) (UserProperty, int, error) {
	k, i, err := decodeString(b, i)
	if err != nil {
		return UserProperty{}, i, err
	}
	v, i, err := decodeString(b, i)
	if err != nil {
		return UserProperty{}, i, err
	}
	return UserProperty{Key: k, Value: v}, i, nil
}

// validString applies the rules every MQTT UTF-8 string obeys: well-formed
// UTF-8 without surrogates [MQTT-1.5.4-1], no U+0000 [MQTT-1.5.4-2], and at
// most 65,535 bytes. Violations are Malformed Packets. A BOM (U+FEFF) is kept
// as is [MQTT-1.5.4-3]; control characters and non-characters are allowed
// (the spec says SHOULD NOT, and the receiver MAY, not MUST, reject them).
func validString(s string) error {
	if len(s) > maxString {
		return malformed("string of %d bytes exceeds 65535", len(s))
	}
	if !utf8.ValidString(s) {
		return malformed("string is not valid UTF-8 [MQTT-1.5.4-1]")
	}
	if strings.IndexByte(s, 0) >= 0 {
		return malformed("string contains U+0000 [MQTT-1.5.4-2]")
	}
	return nil
}

func validBinary(b []byte) error {
	if len(b) > maxString {
		return malformed("binary data of %d bytes exceeds 65535", len(b))
	}
	return nil
}

// VarintSize returns the number of bytes the Variable Byte Integer encoding
// of v takes (1 to 4), or 0 when v exceeds MaxVarint.
func VarintSize(v uint32) int {
	switch {
	case v < 1<<7:
		return 1
	case v < 1<<14:
		return 2
	case v < 1<<21:
		return 3
	case v <= MaxVarint:
		return 4
	}
	return 0
}

// appendVarint appends v (which must be <= MaxVarint) as a Variable Byte
// Integer.
func appendVarint(dst []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(dst, c)
		}
		dst = append(dst, c|0x80)
	}
}

func appendUint16(dst []byte, v uint16) []byte {
	return append(dst, byte(v>>8), byte(v))
}

func appendUint32(dst []byte, v uint32) []byte {
	return append(dst, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
}

// appendString appends a length-prefixed string; the caller has validated it.
func appendString(dst []byte, s string) []byte {
	dst = appendUint16(dst, uint16(len(s)))
	return append(dst, s...)
}

func appendBinary(dst []byte, b []byte) []byte {
	dst = appendUint16(dst, uint16(len(b)))
	return append(dst, b...)
}

func boolBit(b bool, bit byte) byte {
	if b {
		return bit
	}
	return 0
}
