package packet

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReadPacketTooLarge(t *testing.T) {
	// PUBLISH claiming a 1000 byte body: 1 + 2 + 1000 = 1003 bytes.
	hdr := []byte{0x30, 0xE8, 0x07}
	r := bufio.NewReader(bytes.NewReader(append(hdr, bytes.Repeat([]byte("x"), 1000)...)))
	_, err := ReadPacket(r, V311, 1002)
	if !errors.Is(err, ErrTooLarge) || ReasonCodeOf(err) != PacketTooLarge {
		t.Fatalf("err = %v, want packet too large", err)
	}
	// The body was neither allocated nor read.
	if n := r.Buffered(); n != 1000 {
		t.Fatalf("%d bytes buffered after the header, want the 1000 unread body bytes", n)
	}
}

func TestReadPacketExactlyMaxSize(t *testing.T) {
	wire := []byte{0x30, 0x04, 0x00, 0x01, 'a', 'b'}
	p, err := ReadPacket(bufio.NewReader(bytes.NewReader(wire)), V5-1, uint32(len(wire)))
	if err != nil {
		t.Fatal(err)
	}
	if want := (&Publish{Topic: "a", Payload: []byte("b")}); !reflect.DeepEqual(p, want) {
		t.Fatalf("got %#v", p)
	}
}

func TestReadPacketEOF(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want error
	}{
		{"clean end", nil, io.EOF},
		{"inside remaining length", []byte{0x30, 0x80}, io.ErrUnexpectedEOF},
		{"after fixed header", []byte{0x30, 0x05}, io.ErrUnexpectedEOF},
		{"inside body", []byte{0x30, 0x05, 0x00, 0x01}, io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadPacket(bufio.NewReader(bytes.NewReader(tt.wire)), V311, 0)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err = %v, want %v", err, tt.want)
			}
			if errors.Is(tt.want, io.ErrUnexpectedEOF) && !strings.HasPrefix(err.Error(), "packet: ") {
				t.Fatalf("err %q lacks the package prefix", err)
			}
		})
	}
}

func TestReadPacketMalformedHeader(t *testing.T) {
	tests := []struct {
		name string
		wire []byte
		want ReasonCode
	}{
		{"five byte remaining length", []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, MalformedPacket},
		{"non-minimal remaining length", []byte{0xC0, 0x80, 0x00}, MalformedPacket},
		{"bad flags before body", []byte{0x60, 0x02, 0x00, 0x01}, MalformedPacket},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadPacket(bufio.NewReader(bytes.NewReader(tt.wire)), V311, 0)
			if ReasonCodeOf(err) != tt.want {
				t.Fatalf("err = %v, want code %v", err, tt.want)
			}
		})
	}
}

// TestReaderSession reads a 5.0 exchange one byte at a time, switching the
// version after CONNECT as a server does.
func TestReaderSession(t *testing.T) {
	conn := &Connect{ProtocolName: "MQTT", ProtocolVersion: V5, CleanStart: true, ClientID: "a"}
	pub := &Publish{QoS: 1, PacketID: 9, Topic: "t", Payload: []byte("x")}
	var buf bytes.Buffer
	for _, p := range []Packet{conn, pub, &Disconnect{ReasonCode: DisconnectWithWillMessage}} {
		if err := Write(&buf, p, V5); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(iotest.OneByteReader(&buf), 0, 1024)
	got, err := r.ReadPacket()
	if err != nil || !reflect.DeepEqual(got, conn) {
		t.Fatalf("CONNECT: %#v, %v", got, err)
	}
	r.Version = got.(*Connect).ProtocolVersion
	if got, err = r.ReadPacket(); err != nil || !reflect.DeepEqual(got, pub) {
		t.Fatalf("PUBLISH: %#v, %v", got, err)
	}
	if got, err = r.ReadPacket(); err != nil || got.(*Disconnect).ReasonCode != DisconnectWithWillMessage {
		t.Fatalf("DISCONNECT: %#v, %v", got, err)
	}
	if _, err = r.ReadPacket(); !errors.Is(err, io.EOF) {
		t.Fatalf("after last packet: %v, want io.EOF", err)
	}
	br := bufio.NewReader(&buf)
	if NewReader(br, 0, 0).R != br {
		t.Fatal("NewReader wrapped a *bufio.Reader again")
	}
}

func TestWriteError(t *testing.T) {
	boom := errors.New("boom")
	err := Write(errWriter{boom}, &Pingreq{}, V311)
	if !errors.Is(err, boom) || !strings.HasPrefix(err.Error(), "packet: ") {
		t.Fatalf("err = %v", err)
	}
	if err := Write(io.Discard, &Puback{}, V311); !errors.Is(err, ErrProtocol) {
		t.Fatalf("invalid packet: err = %v", err)
	}
}

type errWriter struct{ err error }

func (w errWriter) Write([]byte) (int, error) { return 0, w.err }

func TestErrorAPI(t *testing.T) {
	err := annotate(errorf(MalformedPacket, "inner %w", io.ErrUnexpectedEOF), "ctx")
	if !errors.Is(err, ErrMalformed) || errors.Is(err, ErrProtocol) {
		t.Fatalf("errors.Is mismatch for %v", err)
	}
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("%v does not unwrap to io.ErrUnexpectedEOF", err)
	}
	if got, want := err.Error(), "packet: ctx: inner unexpected EOF (malformed packet)"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if ErrTooLarge.Error() != "packet: packet too large" {
		t.Fatalf("sentinel message %q", ErrTooLarge.Error())
	}
	if ReasonCodeOf(nil) != Success || ReasonCodeOf(io.EOF) != UnspecifiedError {
		t.Fatal("ReasonCodeOf of nil or a foreign error")
	}
	if annotate(io.EOF, "x").Error() != "packet: x: EOF" {
		t.Fatal("annotate of a foreign error")
	}
}

func TestReasonCodeStrings(t *testing.T) {
	for c := range 256 {
		rc := ReasonCode(c)
		if rc.String() == "" {
			t.Fatalf("empty name for 0x%02X", c)
		}
		for typ, codes := range validCodes {
			for _, v := range codes {
				if _, ok := reasonNames[v]; !ok {
					t.Fatalf("%s code 0x%02X has no name", typ, byte(v))
				}
			}
		}
	}
	if ReasonCode(0xFF).String() != "reason code 0xFF" || PacketTooLarge.String() != "packet too large" {
		t.Fatal("String")
	}
	if !QuotaExceeded.IsError() || NoMatchingSubscribers.IsError() {
		t.Fatal("IsError")
	}
}

func TestLegacyConnackCode(t *testing.T) {
	tests := map[ReasonCode]ReasonCode{
		Success:                    ConnectionAccepted,
		UnsupportedProtocolVersion: RefusedUnacceptableProtocolVersion,
		ClientIdentifierNotValid:   RefusedIdentifierRejected,
		BadUserNameOrPassword:      RefusedBadUsernameOrPassword,
		NotAuthorized:              RefusedNotAuthorized,
		Banned:                     RefusedNotAuthorized,
		ServerBusy:                 RefusedServerUnavailable,
		MalformedPacket:            RefusedServerUnavailable,
		RefusedNotAuthorized:       RefusedNotAuthorized,
	}
	for in, want := range tests {
		if got := LegacyConnackCode(in); got != want {
			t.Errorf("LegacyConnackCode(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestTypeString(t *testing.T) {
	if PUBLISH.String() != "PUBLISH" || AUTH.String() != "AUTH" || Type(16).String() != "Type(16)" {
		t.Fatal("Type.String")
	}
	for typ := CONNECT; typ <= AUTH; typ++ {
		if p := newPacket(typ); p == nil || p.Type() != typ {
			t.Fatalf("newPacket(%v) = %#v", typ, p)
		}
	}
}

func TestVarint(t *testing.T) {
	for _, v := range []uint32{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, MaxVarint} {
		b := appendVarint(nil, v)
		if len(b) != VarintSize(v) {
			t.Fatalf("VarintSize(%d) = %d, encoded %d bytes", v, VarintSize(v), len(b))
		}
		got, next, err := decodeVarint(b, 0)
		if err != nil || got != v || next != len(b) {
			t.Fatalf("decodeVarint(% X) = %d, %d, %v", b, got, next, err)
		}
	}
	if VarintSize(MaxVarint+1) != 0 {
		t.Fatal("VarintSize above the maximum")
	}
}

// A declared Remaining Length within the limit is not allocated up front:
// memory follows the bytes that actually arrive, so a peer that announces
// a large packet and sends a few bytes cannot make the server hold the
// whole size (per connection, before CONNECT).
func TestReadPacketAllocatesWhatArrives(t *testing.T) {
	hdr := []byte{0x30, 0x80, 0x80, 0x40} // PUBLISH, Remaining Length 1 MiB
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 8 {
		r := bufio.NewReader(io.MultiReader(bytes.NewReader(hdr), strings.NewReader("0123456789")))
		if _, err := ReadPacket(r, V311, 2<<20); !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("err = %v, want unexpected EOF", err)
		}
	}
	runtime.ReadMemStats(&after)
	if d := after.TotalAlloc - before.TotalAlloc; d > 2<<20 {
		t.Fatalf("%d bytes allocated for 8 packets of 14 bytes", d)
	}
	// A whole large packet still reads correctly.
	body := append([]byte{0, 1, 't'}, bytes.Repeat([]byte("p"), 300<<10)...)
	wire := append([]byte{0x30}, appendVarint(nil, uint32(len(body)))...)
	p, err := ReadPacket(bufio.NewReader(bytes.NewReader(append(wire, body...))), V311, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if pub := p.(*Publish); pub.Topic != "t" || len(pub.Payload) != 300<<10 {
		t.Fatalf("got topic %q, %d payload bytes", pub.Topic, len(pub.Payload))
	}
}

// TestReaderRecycle decodes into recycled packets: each decode is exactly
// what a fresh one gives (nothing left over from the packet before), what
// the recycled packet's fields referred to stays as it was, and a read
// stream of PUBLISH and acknowledgements allocates no packet struct.
func TestReaderRecycle(t *testing.T) {
	expiry, format := uint32(60), byte(1)
	first := &Publish{QoS: 1, PacketID: 7, Topic: "a/b", Payload: []byte("one"), Properties: Properties{
		MessageExpiryInterval: &expiry, PayloadFormatIndicator: &format, CorrelationData: []byte("corr"),
		User: []UserProperty{{Key: "k", Value: "v"}},
	}}
	second := &Publish{QoS: 2, PacketID: 8, Topic: "c", Payload: []byte("two")}
	packets := []Packet{first, &Puback{PacketID: 7, ReasonCode: NoMatchingSubscribers, Properties: Properties{ReasonString: ptr("r")}},
		second, &Puback{PacketID: 8}, &Pubrec{PacketID: 9}, &Pubrel{PacketID: 9}, &Pubcomp{PacketID: 9}}
	var buf bytes.Buffer
	for _, p := range packets {
		if err := Write(&buf, p, V5); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&buf, V5, 0)
	got, err := r.ReadPacket()
	if err != nil || !reflect.DeepEqual(got, first) {
		t.Fatalf("first PUBLISH: %#v, %v", got, err)
	}
	kept := *got.(*Publish) // what the engine keeps of it: field values
	r.Recycle(got)
	var puback Packet
	for i, want := range packets[1:] {
		p, err := r.ReadPacket()
		if err != nil || !reflect.DeepEqual(p, want) {
			t.Fatalf("packet %d: %#v, %v; want %#v", i+1, p, err, want)
		}
		if i == 1 && p != got {
			t.Fatal("the second PUBLISH was not decoded into the recycled one")
		}
		if i == 2 && p == puback {
			t.Fatal("a PUBACK not handed back was reused")
		}
		if i == 0 {
			puback = p // not recycled
		} else {
			r.Recycle(p)
		}
	}
	if string(kept.Payload) != "one" || kept.Topic != "a/b" || *kept.Properties.MessageExpiryInterval != 60 ||
		*kept.Properties.PayloadFormatIndicator != 1 || string(kept.Properties.CorrelationData) != "corr" ||
		kept.Properties.User[0] != (UserProperty{Key: "k", Value: "v"}) {
		t.Fatalf("the recycled PUBLISH's field values changed: %#v", kept)
	}
	r.Recycle(&Connect{}) // not kept: no panic, no effect

	// In a steady stream, the packet structs are the recycled ones.
	var stream bytes.Buffer
	for range 100 {
		for _, p := range []Packet{second, &Puback{PacketID: 3}} {
			if err := Write(&stream, p, V5); err != nil {
				t.Fatal(err)
			}
		}
	}
	data := stream.Bytes()
	allocs := testing.AllocsPerRun(20, func() {
		r := NewReader(bytes.NewReader(data), V5, 0)
		for {
			p, err := r.ReadPacket()
			if err != nil {
				return
			}
			r.Recycle(p)
		}
	})
	// Per PUBLISH: its body, its topic string; per PUBACK: its body. Plus
	// the reader, its buffer and the two first packets.
	if perPair := allocs / 100; perPair > 3.2 {
		t.Fatalf("%.1f allocations per PUBLISH and PUBACK read, want at most 3 (the packet structs recycled)", perPair)
	}
}

func ptr[T any](v T) *T { return &v }
