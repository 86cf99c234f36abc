package packet

import (
	"bufio"
	"bytes"
	"reflect"
	"testing"
)

// fuzzVersions maps the fuzzer's version byte onto the levels a server
// passes: 0 before CONNECT, then 3, 4 or 5.
var fuzzVersions = [4]byte{0, V31, V311, V5}

func fuzzVersionIndex(v byte) byte {
	for i, fv := range fuzzVersions {
		if fv == v {
			return byte(i)
		}
	}
	return 0
}

// FuzzDecode feeds arbitrary bytes to Decode. Whatever decodes must encode,
// and the encoding must decode to the same value and be exactly Size bytes;
// ReadPacket must agree with Decode.
func FuzzDecode(f *testing.F) {
	for _, fx := range fixtures {
		f.Add(fuzzVersionIndex(fx.version), fx.wire)
	}
	for _, v := range []byte{V31, V311, V5} {
		for _, p := range samples(v) {
			wire, err := Append(nil, p, v)
			if err != nil {
				f.Fatal(err)
			}
			readV := v
			if p.Type() == CONNECT {
				readV = 0
			}
			f.Add(fuzzVersionIndex(readV), wire)
		}
	}
	f.Fuzz(func(t *testing.T, vi byte, data []byte) {
		version := fuzzVersions[vi%4]
		p, err := Decode(data, version)
		checkReadPacket(t, data, version, p, err)
		if err != nil {
			if _, ok := p.(*Connect); p != nil && !ok {
				t.Fatalf("error %v returned with a %T", err, p)
			}
			return
		}
		encVersion := version
		if c, ok := p.(*Connect); ok {
			encVersion = c.ProtocolVersion
		}
		wire, err := Append(nil, p, encVersion)
		if err != nil {
			t.Fatalf("decoded %#v but cannot encode it: %v", p, err)
		}
		if n, err := Size(p, encVersion); err != nil || n != len(wire) {
			t.Fatalf("Size = %d, %v; encoded %d bytes", n, err, len(wire))
		}
		if len(wire) > len(data) {
			t.Fatalf("re-encoding grew %d -> %d bytes", len(data), len(wire))
		}
		p2, err := Decode(wire, version)
		if err != nil {
			t.Fatalf("re-decode of % X: %v", wire, err)
		}
		if !reflect.DeepEqual(p, p2) {
			t.Fatalf("round trip mismatch:\n  first %#v\n second %#v", p, p2)
		}
	})
}

// checkReadPacket verifies that ReadPacket accepts what Decode accepts (it
// may accept more: it leaves bytes after the packet unread).
func checkReadPacket(t *testing.T, data []byte, version byte, want Packet, wantErr error) {
	t.Helper()
	if wantErr != nil {
		return
	}
	got, err := ReadPacket(bufio.NewReader(bytes.NewReader(data)), version, uint32(len(data)))
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("ReadPacket = %#v, %v; Decode = %#v", got, err, want)
	}
}
