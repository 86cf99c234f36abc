package pebblestore

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/store"
)

// TestRunsBoundRewrites: a consumer that acknowledges one message per
// commit (Receive Maximum 1) makes each commit rewrite the rest of a run.
// Runs are split so that such a rewrite stays small whatever the size of
// the commit that queued the messages: a few KiB per acknowledgement
// (with 128-entry, 32 KiB runs it was 5-16 KiB).
func TestRunsBoundRewrites(t *testing.T) {
	for _, payload := range []int{64, 1000} {
		t.Run(fmt.Sprintf("payload=%d", payload), func(t *testing.T) {
			s := openT(t, t.TempDir(), Options{})
			defer s.Close()
			const n = 500
			b := &store.Batch{}
			b.PutSession(&store.Session{ClientID: "c", CreatedAt: time.Unix(1, 0)})
			for seq := uint64(1); seq <= n; seq++ {
				m := &store.Message{ID: s.NextMessageID(), Topic: "t/x", Payload: make([]byte, payload)}
				b.PutMessage(m)
				b.Enqueue("c", &store.QueueEntry{Seq: seq, MessageID: m.ID, QoS: 1})
			}
			mustCommit(t, s, b)
			before := s.db.Metrics().WAL.BytesIn
			for seq := uint64(1); seq <= n; seq++ {
				b := &store.Batch{}
				b.Dequeue("c", seq)
				if err := s.Commit(context.Background(), b); err != nil {
					t.Fatal(err)
				}
			}
			perAck := (s.db.Metrics().WAL.BytesIn - before) / n
			t.Logf("%d WAL bytes per acknowledgement", perAck)
			if limit := uint64(6 << 10); perAck > limit {
				t.Fatalf("%d WAL bytes per acknowledgement, want at most %d", perAck, limit)
			}
			if st := s.Stats(); st.Messages != 0 || st.Bytes != 0 {
				t.Fatalf("stats after draining: %+v", st)
			}
		})
	}
}
