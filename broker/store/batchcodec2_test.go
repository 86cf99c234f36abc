package store

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// fanoutSample is an ingest group commit: messages each queued for many
// sessions, plus the odd entries a fan-out item cannot hold.
func fanoutSample() *Batch {
	b := codecSample()
	for m := range 3 {
		id := uint64(100 + m)
		b.PutMessage(&Message{ID: id, Topic: "load/in/1", Payload: []byte("p"), QoS: 1})
		for s := range 20 {
			e := &QueueEntry{Seq: uint64(10 + m), MessageID: id, QoS: 1}
			switch s {
			case 3:
				e.SubscriptionIDs, e.Retain = []uint32{1, 1 << 31}, true
			case 4:
				e.PacketID, e.State, e.QoS = 65535, Released, 2
			case 5:
				e.QoS = 9 // not a valid QoS, but the codec must carry it: a plain op
			case 6:
				e.Seq = 1 // lower than the session's previous: a negative delta
			}
			b.Enqueue(fmt.Sprintf("s%d", s), e)
		}
		b.Enqueue("other", &QueueEntry{Seq: 1, MessageID: 42}) // another message's
	}
	b.Dequeue("s1", 10)
	b.UpdateEntry("s2", &QueueEntry{Seq: 1<<64 - 1, MessageID: 7, State: Sent, PacketID: 3})
	b.Dequeue("s2", 0)
	return b
}

// repeatSample has fan-outs a repeat item holds, and some it must not.
func repeatSample() *Batch {
	b := &Batch{}
	fan := func(id uint64, seq func(s int) uint64, sessions int, e func(*QueueEntry)) {
		b.PutMessage(&Message{ID: id, Topic: "t", Payload: []byte{byte(id)}, QoS: 1})
		for s := range sessions {
			qe := &QueueEntry{Seq: seq(s), MessageID: id, QoS: 1}
			if e != nil {
				e(qe)
			}
			b.Enqueue(fmt.Sprintf("s%d", s), qe)
		}
	}
	fan(1, func(int) uint64 { return 1 }, 5, nil)
	fan(2, func(int) uint64 { return 2 }, 5, nil) // a repeat
	fan(3, func(s int) uint64 { return 3 + uint64(s/2) }, 5, nil)
	fan(4, func(int) uint64 { return 9 }, 4, nil)                     // fewer sessions
	b.Dequeue("s1", 20)                                               // moves s1's previous Seq
	fan(5, func(s int) uint64 { return 10 + 11*uint64(s%2) }, 4, nil) // a repeat after it
	fan(6, func(int) uint64 { return 30 }, 4, func(e *QueueEntry) { e.Retain = true })
	fan(7, func(int) uint64 { return 31 }, 4, func(e *QueueEntry) { e.Retain = true }) // a repeat with flags
	fan(8, func(int) uint64 { return 32 }, 4, func(e *QueueEntry) { e.PacketID = 1 })
	fan(9, func(int) uint64 { return 33 }, 4, func(e *QueueEntry) { e.PacketID = 1 }) // not a repeat: a packet ID
	fan(10, func(int) uint64 { return 34 }, 6, nil)                                   // more sessions
	return b
}

// decodeBoth decodes data with UnmarshalBinary and a Decoder and checks
// that they agree.
func decodeBoth(t testing.TB, data []byte) (*Batch, error) {
	t.Helper()
	var b, r Batch
	var d Decoder
	err, derr := b.UnmarshalBinary(data), d.Decode(&r, data)
	if (err == nil) != (derr == nil) {
		t.Fatalf("UnmarshalBinary: %v, Decoder: %v", err, derr)
	}
	if err == nil && (!reflect.DeepEqual(b.Ops, r.Ops) || b.NoSync != r.NoSync) {
		t.Fatal("the Decoder decoded another batch than UnmarshalBinary")
	}
	return &b, err
}

func TestBatchCodecV2DecodesAsV1(t *testing.T) {
	for name, in := range map[string]*Batch{"sample": codecSample(), "fan-out": fanoutSample(), "empty": {},
		"ingest": ingestBatch(), "repeats": repeatSample()} {
		t.Run(name, func(t *testing.T) {
			v1, err := in.MarshalBinaryFormat(1)
			if err != nil {
				t.Fatal(err)
			}
			v2, err := in.MarshalBinaryFormat(2)
			if err != nil {
				t.Fatal(err)
			}
			if v2[0] != 2 || v1[0] != 1 {
				t.Fatalf("versions %d and %d", v1[0], v2[0])
			}
			b1, err := decodeBoth(t, v1)
			if err != nil {
				t.Fatal(err)
			}
			b2, err := decodeBoth(t, v2)
			if err != nil {
				t.Fatal(err)
			}
			if len(in.Ops) > 0 && !reflect.DeepEqual(in.Ops, b2.Ops) {
				for i := range in.Ops {
					if !reflect.DeepEqual(in.Ops[i], b2.Ops[i]) {
						t.Fatalf("op %d differs:\n in  %s\n v2  %s", i, dumpOp(in.Ops[i]), dumpOp(b2.Ops[i]))
					}
				}
			}
			if !reflect.DeepEqual(b1, b2) {
				t.Fatal("v1 and v2 decode to different batches")
			}
			t.Logf("%d ops: v1 %d bytes, v2 %d bytes", len(in.Ops), len(v1), len(v2))
		})
	}
}

func TestBatchCodecV2RefusesBadInput(t *testing.T) {
	good, err := fanoutSample().MarshalBinaryFormat(2)
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"flags":             append([]byte{2, 0x40}, good[2:]...),
		"format entry flag": {2, flagFormat, 0, 0},
		"trailing":          append(append([]byte(nil), good...), 0),
		"huge op count":     {2, 0, 0xff, 0xff, 0xff, 0xff, 0x0f, 0},
		"huge table":        {2, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"table overrun":     {2, 0, 1, 2, 1, 'a', 5, 'b'},
		"client past table": {2, 0, 1, 1, 1, 'a', byte(OpDequeue), 1, 2},
		"missing seq":       {2, 0, 1, 1, 1, 'a', byte(OpDequeue), 0},
		"unknown kind":      {2, 0, 1, 0, 99},
		"fan-out of 0":      append(fanoutHead(2), 0),
		"fan-out too long":  append(fanoutHead(2), 2, 0, 2, 1, 0, 2, 1),
		"huge fan-out":      append(fanoutHead(2), 0xff, 0xff, 0xff, 0xff, 0x0f),
		"fewer ops":         {2, 0, 2, 0, byte(OpDeleteSession), 0},
		"lone repeat":       appendMessage([]byte{2, 0, 2, 0, kindRepeat}, &Message{ID: 1}),
		"repeat too long":   appendMessage(append(append(fanoutHead(4), 2, 0, 2, 1, 0, 2, 1), kindRepeat), &Message{ID: 2}),
	}
	for i := 0; i < len(good); i++ {
		cases[fmt.Sprintf("truncated at %d", i)] = good[:i]
	}
	for name, data := range cases {
		if _, err := decodeBoth(t, data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	for _, data := range [][]byte{append([]byte{BatchFormat + 1}, good[1:]...), FormatEntry(2), FormatEntry(BatchFormat + 1)} {
		var b Batch
		err := b.UnmarshalBinary(data)
		if data[0] > BatchFormat && (!errors.Is(err, ErrNewerFormat) || errors.Is(err, ErrCorrupt)) {
			t.Errorf("version %d: err = %v, want ErrNewerFormat", data[0], err)
		}
		if data[0] <= BatchFormat && !errors.Is(err, ErrCorrupt) {
			t.Errorf("a format entry decoded as a batch: %v", err)
		}
	}
}

// fanoutHead is a version 2 batch of ops operations, one client "a", up
// to a fan-out item's count.
func fanoutHead(ops byte) []byte {
	d := []byte{2, 0, ops, 1, 1, 'a', kindFanout}
	return appendMessage(d, &Message{ID: 1})
}

func TestFormatEntry(t *testing.T) {
	for v := uint8(2); v < 10; v++ {
		if got, ok := ParseFormatEntry(FormatEntry(v)); !ok || got != v {
			t.Errorf("format %d: parsed %d %v", v, got, ok)
		}
	}
	b, _ := (&Batch{}).MarshalBinaryFormat(2)
	for _, d := range [][]byte{nil, {2}, {1, flagFormat}, {2, flagFormat, 0}, b} {
		if _, ok := ParseFormatEntry(d); ok {
			t.Errorf("%x parsed as a format entry", d)
		}
	}
	if _, err := (&Batch{}).MarshalBinaryFormat(BatchFormat + 1); err == nil {
		t.Error("encoded a version this build does not write")
	}
}

// The ingest shape: the bytes per message of a group commit of 15
// messages each queued for 100 sessions.
func TestBatchCodecV2IngestSize(t *testing.T) {
	in := ingestBatch()
	v1, _ := in.MarshalBinaryFormat(1)
	v2, _ := in.MarshalBinaryFormat(2)
	t.Logf("ingest entry per message: v1 %d bytes, v2 %d bytes (%.1fx smaller)", len(v1)/15, len(v2)/15, float64(len(v1))/float64(len(v2)))
	if len(v2)*8 > len(v1) { // repeat items: the message alone after the first
		t.Fatalf("v2 %d bytes is not an eighth of v1's %d", len(v2), len(v1))
	}
}

func ingestBatch() *Batch {
	in := &Batch{}
	for m := range 15 {
		id := uint64(m + 1)
		in.PutMessage(&Message{ID: id, Topic: "load/in/1", Payload: make([]byte, 64), QoS: 1})
		for s := range 100 {
			in.Enqueue(fmt.Sprintf("in-%d", s), &QueueEntry{Seq: id, MessageID: id, QoS: 1})
		}
	}
	return in
}

// v1 and v2 encodings of any batch the codec decodes decode to equal
// batches, whatever the version of the input.
func FuzzBatchCodecV2(f *testing.F) {
	for _, b := range []*Batch{codecSample(), fanoutSample(), {}, repeatSample()} {
		for v := 1; v <= 2; v++ {
			d, err := b.MarshalBinaryFormat(v)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(d)
		}
	}
	f.Add(append(fanoutHead(3), 2, 0, 2, 1, 0, 2, 1))
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := decodeBoth(t, data)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerFormat) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrNewerFormat: %v", err)
			}
			return
		}
		v1, err := b.MarshalBinaryFormat(1)
		if err != nil {
			t.Fatal(err)
		}
		v2, err := b.MarshalBinaryFormat(2)
		if err != nil {
			t.Fatal(err)
		}
		b1, err := decodeBoth(t, v1)
		if err != nil {
			t.Fatalf("decode v1: %v", err)
		}
		b2, err := decodeBoth(t, v2)
		if err != nil {
			t.Fatalf("decode v2: %v", err)
		}
		if !reflect.DeepEqual(b1, b2) || !reflect.DeepEqual(b1.Ops, b.Ops) && len(b.Ops) > 0 {
			t.Fatal("v1 and v2 encodings decode to different batches")
		}
		again, _ := b2.MarshalBinaryFormat(2)
		if !bytes.Equal(again, v2) {
			t.Fatal("v2 encoding is not stable")
		}
	})
}
