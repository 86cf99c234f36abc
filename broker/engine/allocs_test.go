//go:build unix

package engine

import (
	"io"
	"testing"
)

// The round trip of one message in flight allocates nothing for what
// stores nothing (issue 13): an inline raw write reuses its state, and
// a burst of acknowledgements that stored nothing leaves its batch for
// the next burst.
func TestOneMessageRoundAllocatesNoScaffolding(t *testing.T) {
	nc, peer := tcpPair(t)
	go func() { _, _ = io.Copy(io.Discard, peer) }()

	raw := rawConnOf(nc)
	if raw == nil {
		t.Fatal("a TCP connection has no raw socket")
	}
	var rw rawWrite
	msg := make([]byte, 80)
	if n := testing.AllocsPerRun(200, func() {
		if writeNoWait(raw, &rw, msg) != len(msg) {
			t.Error("a short write to an idle socket")
		}
	}); n != 0 {
		t.Errorf("writeNoWait allocates %.1f times per write", n)
	}

	c := &conn{}
	first := c.ackBatch()
	c.flushAcks() // stored nothing: kept
	if c.acks != nil || c.ackSpare != first {
		t.Fatal("an empty acknowledgement batch was not kept")
	}
	if c.ackBatch() != first {
		t.Fatal("the next burst did not reuse the empty batch")
	}
	first.Dequeue("c", 1)
	if !first.NoSync {
		t.Fatal("a reused acknowledgement batch must stay NoSync")
	}

	w := &writer{}
	b := w.batch()
	w.spare = b
	if w.batch() != b || w.spare != nil {
		t.Fatal("the writer's spare batch is not handed out once")
	}
	if nb := w.batch(); nb == b || !nb.NoSync || nb.Len() != 0 {
		t.Fatalf("a new round's batch %+v", nb)
	}
}
