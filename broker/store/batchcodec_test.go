package store

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"
)

func codecSample() *Batch {
	pf := byte(1)
	at := time.Unix(0, 1_700_000_000_123_456_789)
	msg := &Message{
		ID: 42, Publisher: "pub", Topic: "a/b", Payload: []byte("hello"), QoS: 2, Retain: true,
		Props: Properties{
			PayloadFormat: &pf, ContentType: "text/plain", ResponseTopic: "r/t",
			CorrelationData: []byte{}, UserProperties: []UserProperty{{"k", "v"}, {"", ""}},
		},
		PublishedAt: at, ExpiresAt: at.Add(time.Hour),
	}
	b := &Batch{NoSync: true}
	b.PutSession(&Session{ClientID: "c1", Principal: "alice", ProtocolVersion: 5, ExpiryInterval: 3600,
		CreatedAt: at, Will: &Will{Message: Message{Topic: "will", Payload: []byte("bye"), QoS: 1}, DelayInterval: 9}})
	b.PutSession(&Session{ClientID: "c2", DisconnectedAt: at})
	b.PutSubscription("c1", &Subscription{Filter: "a/#", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, ID: 7})
	b.DeleteSubscription("c1", "x/+")
	b.PutMessage(msg)
	b.Enqueue("c1", &QueueEntry{Seq: 1, MessageID: 42, QoS: 1, Retain: true, SubscriptionIDs: []uint32{7, 8}, State: Sent, PacketID: 300})
	b.UpdateEntry("c1", &QueueEntry{Seq: 1, MessageID: 42, State: Released, PacketID: 300})
	b.Dequeue("c1", 1)
	b.PutInboundQoS2("c1", 65535)
	b.DeleteInboundQoS2("c1", 1)
	b.PutRetained(&Message{ID: 43, Topic: "r", Payload: []byte("x")})
	b.DeleteRetained("r")
	b.DeleteSession("c2")
	return b
}

func TestBatchCodecRoundTrip(t *testing.T) {
	in := codecSample()
	data, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out Batch
	if err := out.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if in.NoSync != out.NoSync || len(in.Ops) != len(out.Ops) {
		t.Fatalf("round trip: NoSync %v ops %d, want %v %d", out.NoSync, len(out.Ops), in.NoSync, len(in.Ops))
	}
	for i := range in.Ops {
		if !reflect.DeepEqual(in.Ops[i], out.Ops[i]) {
			t.Errorf("op %d (%v) differs:\n in  %s\n out %s", i, in.Ops[i].Kind, dumpOp(in.Ops[i]), dumpOp(out.Ops[i]))
		}
	}
	// Decoded records must not alias the input buffer.
	for i := range data {
		data[i] = 0xff
	}
	if string(out.Ops[4].Message.Payload) != "hello" {
		t.Fatalf("decoded payload aliases the input: %q", out.Ops[4].Message.Payload)
	}
}

func dumpOp(op Op) string {
	return fmt.Sprintf("%+v session=%+v sub=%+v msg=%+v entry=%+v", op, op.Session, op.Subscription, op.Message, op.Entry)
}

func TestBatchCodecRefusesBadInput(t *testing.T) {
	good, err := codecSample().MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string][]byte{
		"empty":           nil,
		"version":         append([]byte{0}, good[1:]...),
		"flags":           append([]byte{good[0], 0x80}, good[2:]...),
		"trailing":        append(append([]byte(nil), good...), 0),
		"huge count":      {batchCodecVersion, 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"unknown kind":    {batchCodecVersion, 0, 1, 99},
		"huge string":     {batchCodecVersion, 0, 1, byte(OpDeleteSession), 0xff, 0xff, 0x03, 'a'},
		"bad time tag":    {batchCodecVersion, 0, 1, byte(OpPutSession), 0, 0, 5, 0, 7},
		"uint32 overflow": {batchCodecVersion, 0, 1, byte(OpPutSession), 0, 0, 5, 0xff, 0xff, 0xff, 0xff, 0x1f},
	}
	for i := 0; i < len(good); i++ {
		cases["truncated at "+string(rune('a'+i%26))+string(rune('0'+i/26))] = good[:i]
	}
	for name, data := range cases {
		var b Batch
		if err := b.UnmarshalBinary(data); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: err = %v, want ErrCorrupt", name, err)
		}
	}
	// A later version is a newer build's, not corrupt: a member that
	// cannot read it must stop, not refuse it alike.
	var b Batch
	if err := b.UnmarshalBinary(append([]byte{BatchFormat + 1}, good[1:]...)); !errors.Is(err, ErrNewerFormat) || errors.Is(err, ErrCorrupt) {
		t.Errorf("newer version: err = %v, want ErrNewerFormat", err)
	}
}

func TestBatchCodecRefusesIncompleteOps(t *testing.T) {
	for _, op := range []Op{{Kind: OpPutSession}, {Kind: OpPutMessage}, {Kind: OpEnqueue}, {Kind: OpPutSubscription}, {Kind: 0}} {
		if _, err := (&Batch{Ops: []Op{op}}).MarshalBinary(); err == nil {
			t.Errorf("%v: encoded an operation without its record", op.Kind)
		}
	}
}

func FuzzBatchCodec(f *testing.F) {
	good, err := codecSample().MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte{batchCodecVersion, 0, 0})
	// One Decoder and Batch for every input, as a member's FSM reuses
	// them: whatever came before, they decode what UnmarshalBinary does.
	var d Decoder
	var reused Batch
	f.Fuzz(func(t *testing.T, data []byte) {
		var b Batch
		err := b.UnmarshalBinary(data)
		derr := d.Decode(&reused, data)
		if (err == nil) != (derr == nil) {
			t.Fatalf("UnmarshalBinary: %v, Decoder: %v", err, derr)
		}
		same := len(b.Ops) == 0 && len(reused.Ops) == 0 || reflect.DeepEqual(b.Ops, reused.Ops)
		if err == nil && (!same || b.NoSync != reused.NoSync) {
			t.Fatal("the Decoder decoded another batch than UnmarshalBinary")
		}
		clear(reused.Ops)
		d.Reset()
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrNewerFormat) {
				t.Fatalf("error wraps neither ErrCorrupt nor ErrNewerFormat: %v", err)
			}
			return
		}
		again, err := b.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode a decoded batch: %v", err)
		}
		var b2 Batch
		if err := b2.UnmarshalBinary(again); err != nil {
			t.Fatalf("decode the re-encoded batch: %v", err)
		}
		again2, _ := b2.MarshalBinary()
		if !bytes.Equal(again, again2) {
			t.Fatal("encoding is not stable")
		}
	})
}

// BenchmarkBatchDecode decodes what an ingest group commit replicates: 15
// messages, each queued for 100 sessions, in version 1 (UnmarshalBinary,
// Decoder) and version 2 (V2...).
func BenchmarkBatchDecode(b *testing.B) {
	in := ingestBatch()
	for _, v := range []int{1, 2} {
		data, err := in.MarshalBinaryFormat(v)
		if err != nil {
			b.Fatal(err)
		}
		prefix := ""
		if v == 2 {
			prefix = "V2"
		}
		b.Run(prefix+"UnmarshalBinary", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				var out Batch
				if err := out.UnmarshalBinary(data); err != nil {
					b.Fatal(err)
				}
			}
		})
		// Decoder: as a follower's FSM decodes, reusing the batch and the
		// decoder's memory from one entry to the next.
		b.Run(prefix+"Decoder", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var d Decoder
			var out Batch
			for b.Loop() {
				if err := d.Decode(&out, data); err != nil {
					b.Fatal(err)
				}
				clear(out.Ops)
				d.Reset()
			}
		})
	}
}

// BenchmarkBatchEncode encodes what an ingest group commit replicates.
func BenchmarkBatchEncode(b *testing.B) {
	in := ingestBatch()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.MarshalBinary(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkBatchEncodeV2 is BenchmarkBatchEncode in version 2.
func BenchmarkBatchEncodeV2(b *testing.B) {
	in := ingestBatch()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := in.MarshalBinaryFormat(2); err != nil {
			b.Fatal(err)
		}
	}
}

// Client IDs are interned up to maxInterned per decode; IDs past the bound
// (a batch naming more sessions) still decode exactly.
func TestBatchCodecManyClientIDs(t *testing.T) {
	in := &Batch{}
	for i := range maxInterned + 100 {
		in.Dequeue(fmt.Sprintf("c%d", i), uint64(i))
		in.Dequeue(fmt.Sprintf("c%d", i%7), uint64(i)) // repeats, interned
	}
	data, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var out Batch
	if err := out.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(in.Ops, out.Ops) {
		t.Fatal("decoded operations differ")
	}
}

// A Decoder decodes exactly what UnmarshalBinary does, batch after batch
// into the same Batch and memory; every batch decoded since the last Reset
// stays intact until the next Reset, and none aliases its input.
func TestDecoderReusesMemory(t *testing.T) {
	var inputs [][]byte
	var want []Batch
	for i := range 5 {
		in := codecSample()
		for s := range 300 * i { // growing fan-outs: the slab grows
			in.Enqueue(fmt.Sprintf("s%d", s%150), &QueueEntry{Seq: uint64(s + 2), MessageID: 42, QoS: 1, SubscriptionIDs: []uint32{uint32(s)}})
		}
		data, err := in.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		var w Batch
		if err := w.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		inputs, want = append(inputs, data), append(want, w)
	}
	var d Decoder
	got := make([]Batch, len(inputs))
	for round := range 3 {
		for i, data := range inputs {
			if err := d.Decode(&got[i], data); err != nil {
				t.Fatalf("round %d batch %d: %v", round, i, err)
			}
		}
		for i := range inputs {
			for j := range inputs[i] {
				inputs[i][j] ^= 0xff // no aliasing
			}
		}
		for i := range got {
			if !reflect.DeepEqual(got[i].Ops, want[i].Ops) || got[i].NoSync != want[i].NoSync {
				t.Fatalf("round %d batch %d: decoded batch differs from UnmarshalBinary's", round, i)
			}
		}
		for i := range inputs {
			for j := range inputs[i] {
				inputs[i][j] ^= 0xff
			}
		}
		d.Reset()
	}
	// A refused input leaves no partial operations behind.
	b := got[0]
	if err := d.Decode(&b, inputs[1][:len(inputs[1])-3]); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("truncated: err = %v", err)
	}
	for _, op := range b.Ops {
		if op.Kind == 0 {
			t.Fatal("a refused decode left a zero operation")
		}
	}
}

// The decoder keeps at most maxSlab entries, and operations, between
// batches.
func TestDecoderSlabBounded(t *testing.T) {
	in := &Batch{}
	in.PutMessage(&Message{ID: 1})
	for s := range 2*maxSlab + 10 {
		in.Enqueue("c", &QueueEntry{Seq: uint64(s + 1), MessageID: 1})
	}
	data, err := in.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var d Decoder
	var b Batch
	if err := d.Decode(&b, data); err != nil {
		t.Fatal(err)
	}
	if n := cap(d.ents.buf) + d.ents.spilled; n <= maxSlab {
		t.Fatalf("slabs hold %d entries for %d decoded", n, 2*maxSlab+10)
	}
	d.Reset()
	if cap(d.ents.buf) > maxSlab || cap(d.ops.buf) > maxSlab {
		t.Fatalf("Reset kept slabs of %d entries and %d operations, bound %d", cap(d.ents.buf), cap(d.ops.buf), maxSlab)
	}
}

// After a round that filled several slabs, Reset keeps one that holds them
// all: the same round again takes no new slab, of queue entries or of
// operations.
func TestDecoderSlabFitsTheLastRound(t *testing.T) {
	const n = 3000 // more than chunk: slabs of 128, 256, ..., 4096
	var inputs [][]byte
	for batch := range 3 {
		in := &Batch{}
		in.PutMessage(&Message{ID: uint64(batch + 1)})
		for s := range n / 3 {
			in.Enqueue(fmt.Sprintf("c%d", s%10), &QueueEntry{Seq: uint64(s + 1), MessageID: uint64(batch + 1)})
		}
		data, err := in.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		inputs = append(inputs, data)
	}
	var d Decoder
	bs := make([]Batch, len(inputs))
	var ents, ops int
	for round := range 3 {
		for i, data := range inputs {
			if err := d.Decode(&bs[i], data); err != nil {
				t.Fatal(err)
			}
		}
		if round > 0 && (d.ents.spilled != 0 || cap(d.ents.buf) != ents || d.ops.spilled != 0 || cap(d.ops.buf) != ops) {
			t.Fatalf("round %d: %d entries and %d operations spilled, slabs of %d and %d; want none spilled from slabs of %d and %d",
				round, d.ents.spilled, d.ops.spilled, cap(d.ents.buf), cap(d.ops.buf), ents, ops)
		}
		d.Reset()
		ents, ops = cap(d.ents.buf), cap(d.ops.buf)
		if ents < n || ops < n+len(inputs) || len(d.ents.buf) != 0 || len(d.ops.buf) != 0 {
			t.Fatalf("round %d: Reset left slabs of %d entries and %d operations (%d, %d used), want room for %d and %d",
				round, ents, ops, len(d.ents.buf), len(d.ops.buf), n, n+len(inputs))
		}
	}
	// The operations handed out cannot grow into each other.
	for i, data := range inputs {
		if err := d.Decode(&bs[i], data); err != nil {
			t.Fatal(err)
		}
	}
	bs[0].Ops = append(bs[0].Ops, Op{Kind: OpDequeue, ClientID: "x"})
	if bs[1].Ops[0].Kind != OpPutMessage {
		t.Fatalf("appending to one decoded batch changed the next: %+v", bs[1].Ops[0])
	}
}
