package packet

import (
	"bufio"
	"bytes"
	"io"
	"testing"
)

func benchPublish() *Publish {
	return &Publish{QoS: 1, PacketID: 42, Topic: "sensors/building-1/floor-3/temperature",
		Payload: bytes.Repeat([]byte{'x'}, 256),
		Properties: Properties{MessageExpiryInterval: new(uint32(3600)),
			User: []UserProperty{{"trace", "abc"}}}}
}

func BenchmarkPublishEncode(b *testing.B) {
	p := benchPublish()
	buf := make([]byte, 0, 512)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = p.AppendTo(buf[:0], V5); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
}

func BenchmarkPublishDecode(b *testing.B) {
	wire, err := Append(nil, benchPublish(), V5)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(wire, V5); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublishRead(b *testing.B) {
	wire, err := Append(nil, benchPublish(), V311)
	if err != nil {
		b.Fatal(err)
	}
	r := bytes.NewReader(wire)
	br := bufio.NewReader(r)
	b.SetBytes(int64(len(wire)))
	b.ReportAllocs()
	for b.Loop() {
		r.Reset(wire)
		br.Reset(r)
		if _, err := ReadPacket(br, V311, 1<<20); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkPublishWrite(b *testing.B) {
	p := benchPublish()
	b.ReportAllocs()
	for b.Loop() {
		if err := Write(io.Discard, p, V311); err != nil {
			b.Fatal(err)
		}
	}
}
