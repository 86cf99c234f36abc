package memstore_test

import (
	"context"
	"errors"
	"testing"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

func TestSmoke(t *testing.T) {
	s := memstore.New()
	ctx := context.Background()
	var b store.Batch
	b.PutSession(&store.Session{ClientID: "a"})
	b.PutSession(&store.Session{ClientID: "b"})
	id := s.NextMessageID()
	b.PutMessage(&store.Message{ID: id, Topic: "t", Payload: []byte("xy")})
	b.Enqueue("a", &store.QueueEntry{Seq: 1, MessageID: id})
	b.Enqueue("b", &store.QueueEntry{Seq: 1, MessageID: id})
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Messages != 1 || st.Bytes != 3 || st.Sessions != 2 {
		t.Fatalf("stats %+v", st)
	}
	b.Reset()
	b.Dequeue("a", 1)
	b.Enqueue("a", &store.QueueEntry{Seq: 2, MessageID: 99})
	if err := s.Commit(ctx, &b); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("err %v", err)
	}
	b.Reset()
	b.Dequeue("a", 1)
	b.DeleteSession("b")
	if err := s.Commit(ctx, &b); err != nil {
		t.Fatal(err)
	}
	if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 || st.Sessions != 1 {
		t.Fatalf("stats %+v", st)
	}
}
