package packet

import (
	"bufio"
	"bytes"
	"errors"
	"runtime"
	"strings"
	"testing"
)

// userPropsPublish encodes a 5.0 QoS 1 PUBLISH carrying n user properties
// whose key and value are each size bytes.
func userPropsPublish(t *testing.T, n, size int) []byte {
	t.Helper()
	p := &Publish{QoS: 1, PacketID: 1, Topic: "a/b", Payload: []byte("x")}
	kv := strings.Repeat("k", size)
	p.Properties.User = make([]UserProperty, n)
	for i := range p.Properties.User {
		p.Properties.User[i] = UserProperty{Key: kv, Value: kv}
	}
	b, err := Append(nil, p, V5)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeOptionsUserPropertyLimits(t *testing.T) {
	o := &DecodeOptions{MaxUserProperties: 8, MaxUserPropertyBytes: 100}
	for _, tc := range []struct {
		name    string
		n, size int
		wantErr bool
	}{
		{"at count limit", 8, 0, false},
		{"over count limit", 9, 0, true},
		{"at byte limit", 2, 22, false}, // 2 * (1+2+22+2+22) = 98
		{"over byte limit", 2, 23, true},
		{"one huge pair", 1, 60, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := userPropsPublish(t, tc.n, tc.size)
			p, err := DecodeWith(buf, V5, o)
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("DecodeWith: %v", err)
				}
				if got := len(p.(*Publish).Properties.User); got != tc.n {
					t.Fatalf("decoded %d user properties, want %d", got, tc.n)
				}
				return
			}
			if !errors.Is(err, ErrUserPropertyLimit) || ReasonCodeOf(err) != PacketTooLarge {
				t.Fatalf("DecodeWith: %v, want ErrUserPropertyLimit with PacketTooLarge", err)
			}
			// The Reader applies its Options the same way.
			r := NewReader(bufio.NewReader(bytes.NewReader(buf)), V5, 0)
			r.Options = *o
			if _, err := r.ReadPacket(); !errors.Is(err, ErrUserPropertyLimit) {
				t.Fatalf("Reader.ReadPacket: %v, want ErrUserPropertyLimit", err)
			}
			// Without options the packet is legal.
			if _, err := Decode(buf, V5); err != nil {
				t.Fatalf("Decode without limits: %v", err)
			}
		})
	}
}

func TestDecodeOptionsEveryPropertyBlock(t *testing.T) {
	o := &DecodeOptions{MaxUserProperties: 1}
	two := []UserProperty{{Key: "a", Value: "1"}, {Key: "b", Value: "2"}}
	for _, p := range []Packet{
		&Connect{ProtocolVersion: V5, ClientID: "c", Properties: Properties{User: two}},
		&Connect{ProtocolVersion: V5, ClientID: "c", WillFlag: true, WillTopic: "w", WillProperties: Properties{User: two}},
		&Puback{PacketID: 1, ReasonCode: Success, Properties: Properties{User: two}},
		&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a"}}, Properties: Properties{User: two}},
		&Unsubscribe{PacketID: 1, Filters: []string{"a"}, Properties: Properties{User: two}},
		&Disconnect{Properties: Properties{User: two}},
		&Auth{ReasonCode: ContinueAuthentication, Properties: Properties{User: two, AuthenticationMethod: new("m")}},
	} {
		buf, err := Append(nil, p, V5)
		if err != nil {
			t.Fatalf("%T: %v", p, err)
		}
		version := V5
		if p.Type() == CONNECT {
			version = 0
		}
		if _, err := DecodeWith(buf, version, o); !errors.Is(err, ErrUserPropertyLimit) {
			t.Errorf("%s: %v, want ErrUserPropertyLimit", p.Type(), err)
		}
	}
}

// TestDecodeOptionsBoundHeap is the attack of issue 12: a 1 MiB PUBLISH of
// empty user properties decodes to ~7 MiB of heap without limits; with the
// broker's default limits it is refused having allocated next to nothing.
func TestDecodeOptionsBoundHeap(t *testing.T) {
	buf := userPropsPublish(t, (1<<20)/5, 0)
	alloc := func(o *DecodeOptions) (uint64, error) {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		_, err := DecodeWith(buf, V5, o)
		runtime.ReadMemStats(&after)
		return after.TotalAlloc - before.TotalAlloc, err
	}
	unlimited, err := alloc(nil)
	if err != nil {
		t.Fatal(err)
	}
	limited, err := alloc(&DecodeOptions{MaxUserProperties: 64, MaxUserPropertyBytes: 64 << 10})
	if !errors.Is(err, ErrUserPropertyLimit) {
		t.Fatalf("limited decode: %v", err)
	}
	t.Logf("1 MiB PUBLISH of empty user properties: %d bytes allocated without limits, %d with", unlimited, limited)
	if unlimited < 4<<20 {
		t.Errorf("without limits only %d bytes allocated; the test no longer shows the amplification", unlimited)
	}
	if limited > 32<<10 {
		t.Errorf("with limits %d bytes allocated, want < 32 KiB", limited)
	}
}
