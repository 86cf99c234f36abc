package pebblestore

import (
	"context"
	"reflect"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// TestQueueReadsShareMessages: sessions that read back a message fanned
// out to all of them get the same decoded message (decoded once), equal
// to what was stored, also after it left some of the queues; a message
// stored inline (one reference) is not cached.
func TestQueueReadsShareMessages(t *testing.T) {
	s := openT(t, t.TempDir(), Options{})
	ctx := context.Background()
	sessions := []string{"a", "b", "c"}
	var b store.Batch
	for _, c := range sessions {
		b.PutSession(&store.Session{ClientID: c, ProtocolVersion: 5, ExpiryInterval: 60})
	}
	shared := &store.Message{ID: 1, Topic: "fleet/all", Payload: []byte("shared"), QoS: 1,
		Props: store.Properties{UserProperties: []store.UserProperty{{Key: "k", Value: "v"}}}}
	b.PutMessage(shared)
	for _, c := range sessions {
		b.Enqueue(c, &store.QueueEntry{Seq: 1, MessageID: 1, QoS: 1})
	}
	b.PutMessage(&store.Message{ID: 2, Topic: "one", Payload: []byte("alone"), QoS: 1})
	b.Enqueue("a", &store.QueueEntry{Seq: 2, MessageID: 2, QoS: 1})
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	read := func(c string) []*store.Message {
		t.Helper()
		var out []*store.Message
		if err := s.ReadQueue(c, 0, 0, func(_ store.QueueEntry, m *store.Message) bool {
			out = append(out, m)
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	first := read("a")
	if len(first) != 2 || !reflect.DeepEqual(first[0], shared) {
		t.Fatalf("session a read %v, want the shared message first", first)
	}
	for _, c := range sessions[1:] {
		if got := read(c); len(got) != 1 || got[0] != first[0] {
			t.Fatalf("session %s read %v: not the message session a read", c, got)
		}
	}
	if s.msgs.get(2) != nil {
		t.Error("an inline message was cached")
	}
	var drop store.Batch
	drop.Dequeue("b", 1)
	if err := s.Commit(ctx, &drop); err != nil {
		t.Fatal(err)
	}
	if got := read("c"); len(got) != 1 || !reflect.DeepEqual(got[0], shared) {
		t.Fatalf("after b's dequeue, c read %v", got)
	}
}

// TestMsgCacheBounds: the cache never holds more than its count and byte
// bounds, evicts the oldest insertions first, and skips large messages.
func TestMsgCacheBounds(t *testing.T) {
	var c msgCache
	msg := func(id uint64, n int) *store.Message {
		return &store.Message{ID: id, Topic: "t", Payload: make([]byte, n)}
	}
	for id := uint64(1); id <= msgCacheMax+100; id++ {
		c.put(id, msg(id, 10))
		if len(c.byID) > msgCacheMax || c.bytes > msgCacheBytes {
			t.Fatalf("after %d puts: %d messages, %d bytes", id, len(c.byID), c.bytes)
		}
	}
	if c.get(1) != nil || c.get(100) != nil || c.get(101) == nil || c.get(msgCacheMax+100) == nil {
		t.Error("not the oldest insertions evicted")
	}
	big := msg(1<<40, msgCacheBytes/16)
	if c.put(big.ID, big); c.get(big.ID) != nil {
		t.Error("a message over a sixteenth of the byte bound was cached")
	}
	var sum int64
	for i := range 64 {
		m := msg(1<<41+uint64(i), msgCacheBytes/20)
		c.put(m.ID, m)
		sum = 0
		for _, m := range c.byID {
			sum += m.Size()
		}
		if sum != c.bytes || c.bytes > msgCacheBytes {
			t.Fatalf("bytes %d, counted %d, bound %d", c.bytes, sum, msgCacheBytes)
		}
	}
	if len(c.order)-c.head != len(c.byID) {
		t.Fatalf("order holds %d, map %d", len(c.order)-c.head, len(c.byID))
	}
}
