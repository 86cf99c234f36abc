package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
)

// TestFanoutViews: a batch whose fan-outs reuse the views of the one
// before (txn.fanView) leaves the same queues and statistics as the same
// operations committed one message per batch: fan-outs in the same order,
// in another order, to fewer sessions, and to a session deleted and put
// again inside the batch (whose earlier view must not be reused).
func TestFanoutViews(t *testing.T) {
	sessions := []string{"a", "b", "c"}
	type msg struct {
		id  uint64
		to  []string
		del string // delete then put this session before the message
	}
	msgs := []msg{
		{id: 1, to: []string{"a", "b", "c"}},
		{id: 2, to: []string{"a", "b", "c"}},
		{id: 3, to: []string{"c", "a"}},
		{id: 4, to: []string{"c", "a", "b"}},
		{id: 5, to: []string{"c", "a", "b"}, del: "a"},
		{id: 6, to: []string{"c", "a", "b"}},
		{id: 7, to: []string{"b"}},
		{id: 8, to: []string{"c", "a", "b"}, del: "b"},
	}
	build := func() []*store.Batch {
		seq := map[string]uint64{}
		var out []*store.Batch
		for _, m := range msgs {
			b := &store.Batch{}
			if m.del != "" {
				b.DeleteSession(m.del)
				b.PutSession(&store.Session{ClientID: m.del, ProtocolVersion: 5, ExpiryInterval: 60})
				seq[m.del] = 0
			}
			b.PutMessage(&store.Message{ID: m.id, Topic: "t", Payload: []byte(fmt.Sprint(m.id)), QoS: 1})
			for _, c := range m.to {
				seq[c]++
				b.Enqueue(c, &store.QueueEntry{Seq: seq[c], MessageID: m.id, QoS: 1})
			}
			out = append(out, b)
		}
		return out
	}
	open := func() *Store {
		s := openT(t, t.TempDir(), Options{})
		var setup store.Batch
		for _, c := range sessions {
			setup.PutSession(&store.Session{ClientID: c, ProtocolVersion: 5, ExpiryInterval: 60})
		}
		if err := s.Commit(context.Background(), &setup); err != nil {
			t.Fatal(err)
		}
		return s
	}
	apart, together := open(), open()
	defer apart.Close()
	defer together.Close()
	for _, b := range build() {
		if err := apart.Commit(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
	var one store.Batch
	for _, b := range build() {
		one.Ops = append(one.Ops, b.Ops...)
	}
	if err := together.Commit(context.Background(), &one); err != nil {
		t.Fatal(err)
	}
	queue := func(s *Store, c string) string {
		var out []string
		if err := s.ReadQueue(c, 0, 0, func(e store.QueueEntry, m *store.Message) bool {
			out = append(out, fmt.Sprintf("%d:%s", e.Seq, m.Payload))
			return true
		}); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprint(out)
	}
	want := map[string]string{"a": "[1:5 2:6 3:8]", "b": "[1:8]", "c": "[1:1 2:2 3:3 4:4 5:5 6:6 7:8]"}
	for _, c := range sessions {
		if got, alone := queue(together, c), queue(apart, c); got != alone || got != want[c] {
			t.Errorf("queue %s: in one batch %s, one message per batch %s, want %s", c, got, alone, want[c])
		}
	}
	if got, alone := together.Stats(), apart.Stats(); got != alone {
		t.Errorf("stats: in one batch %+v, one message per batch %+v", got, alone)
	}

	// A session deleted between two fan-outs of a batch is not queued to
	// from the view of the first: the batch is refused, as alone.
	var gone store.Batch
	gone.PutMessage(&store.Message{ID: 20, Topic: "t", Payload: []byte("x"), QoS: 1})
	for _, c := range sessions {
		gone.Enqueue(c, &store.QueueEntry{Seq: 100, MessageID: 20, QoS: 1})
	}
	gone.DeleteSession("b")
	gone.PutMessage(&store.Message{ID: 21, Topic: "t", Payload: []byte("y"), QoS: 1})
	for _, c := range sessions {
		gone.Enqueue(c, &store.QueueEntry{Seq: 101, MessageID: 21, QoS: 1})
	}
	if err := together.Commit(context.Background(), &gone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("enqueue to a session deleted earlier in the batch: %v, want ErrNotFound", err)
	}
	if got := queue(together, "b"); got != want["b"] {
		t.Errorf("queue b after the refused batch: %s, want %s", got, want["b"])
	}
}
