package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A member that was down long enough for the leader's replication to it
// to back off for seconds (hashicorp/raft: 10 ms doubling per failed
// attempt, up to 10.24 s) is sent the entries it missed within a probe
// interval of being back, not when the backoff ends.
func TestReturningMemberIsReplicatedToAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("keeps a member down for 6 s")
	}
	c := newTestCluster(t, 3, fastTiming)
	l := c.leader()
	f := (l + 1) % 3
	c.stop(f)
	st := c.nodes[l].Store()
	ctx := context.Background()
	if err := st.Commit(ctx, sessionBatch("c")); err != nil {
		t.Fatal(err)
	}
	// Six seconds of entries while f is down: every attempt to replicate
	// to it fails, and by the end Raft sleeps 5.12 s between attempts
	// (it slept 10 + 10 + 20 + ... + 2,560 ms = 5.11 s before).
	down := time.Now().Add(6 * time.Second)
	for seq := uint64(1); time.Now().Before(down); seq++ {
		if err := st.Commit(ctx, enqueueBatch(st, "c", seq, "m")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c.start(f)
	t0 := time.Now()
	waitApplied(t, c.nodes[f], c.nodes[c.leader()])
	// The held request is sent again every 40 ms here (a tenth of the
	// heartbeat timeout); without the gate the leader's next attempt came
	// 2-5 s later.
	if took := time.Since(t0); took > 1500*time.Millisecond {
		t.Errorf("the returning member was caught up %v after it started; want it within 1.5 s", took.Round(time.Millisecond))
	} else {
		t.Logf("caught up %v after it started", took.Round(time.Millisecond))
	}
}

func newTestGate(wanted func(raft.ServerID, uint64) bool, done chan struct{}, probe time.Duration) *replicationGate {
	return &replicationGate{
		log: slog.New(slog.NewTextHandler(io.Discard, nil)), done: done,
		wanted: wanted, probe: probe,
	}
}

func always(raft.ServerID, uint64) bool { return true }

// async runs f and returns its outcome's channel.
func async(f func() error) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- f() }()
	return ch
}

func waitAsync(g *replicationGate, id raft.ServerID) <-chan error {
	return async(func() error { return g.wait(id, 1) })
}

func mustBlock(t *testing.T, ch <-chan error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		t.Fatalf("%s: returned %v, want it held", what, err)
	case <-time.After(50 * time.Millisecond):
	}
}

func mustReturn(t *testing.T, ch <-chan error, want error, what string) {
	t.Helper()
	select {
	case err := <-ch:
		if !errors.Is(err, want) {
			t.Fatalf("%s: returned %v, want %v", what, err, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: still held after 5 s", what)
	}
}

var errRefused = errors.New("refused")

func TestReplicationGateWait(t *testing.T) {
	t.Run("reachable members are not held", func(t *testing.T) {
		g := newTestGate(always, make(chan struct{}), time.Millisecond)
		mustReturn(t, waitAsync(g, "a"), nil, "never failed")
		g.observe("a", errRefused)
		g.observe("a", nil)
		mustReturn(t, waitAsync(g, "a"), nil, "answered again")
	})

	t.Run("held until the member answers", func(t *testing.T) {
		g := newTestGate(always, make(chan struct{}), time.Millisecond)
		g.observe("a", errRefused)
		g.observe("a", errRefused) // still the same wait
		held, other := waitAsync(g, "a"), waitAsync(g, "b")
		mustReturn(t, other, nil, "another member")
		mustBlock(t, held, "unreachable member")
		g.observe("a", nil)
		mustReturn(t, held, nil, "after a reply")
	})

	t.Run("released when no longer replicated to", func(t *testing.T) {
		var term atomic.Uint64
		term.Store(1)
		g := newTestGate(func(_ raft.ServerID, t uint64) bool { return t == term.Load() }, make(chan struct{}), time.Millisecond)
		g.observe("a", errRefused)
		held := waitAsync(g, "a")
		mustBlock(t, held, "while leading in the request's term")
		term.Store(2)
		mustReturn(t, held, errNotReplicating, "after a new term")
	})

	t.Run("released when the member closes", func(t *testing.T) {
		done := make(chan struct{})
		g := newTestGate(always, done, time.Hour)
		g.observe("a", errRefused)
		held := waitAsync(g, "a")
		mustBlock(t, held, "open")
		close(done)
		mustReturn(t, held, errNotReplicating, "closed")
	})

	t.Run("reset lets every held request go", func(t *testing.T) {
		g := newTestGate(always, make(chan struct{}), time.Hour)
		g.observe("a", errRefused)
		g.observe("b", errRefused)
		a, b := waitAsync(g, "a"), waitAsync(g, "b")
		mustBlock(t, a, "a before reset")
		g.reset()
		mustReturn(t, a, nil, "a after reset")
		mustReturn(t, b, nil, "b after reset")
		mustReturn(t, waitAsync(g, "a"), nil, "a's next request")
	})
}

func TestReplicationGateRetry(t *testing.T) {
	t.Run("a failed request is sent again until it goes through", func(t *testing.T) {
		g := newTestGate(always, make(chan struct{}), time.Millisecond)
		var calls atomic.Int32
		res := async(func() error {
			return g.retry("a", 1, func() error {
				if calls.Add(1) < 5 {
					return errRefused
				}
				return nil
			})
		})
		mustReturn(t, res, nil, "retry")
		if n := calls.Load(); n != 5 {
			t.Errorf("sent %d times, want 5", n)
		}
		mustReturn(t, waitAsync(g, "a"), nil, "once it went through") // marked reachable
	})

	t.Run("sent again at once when a heartbeat answers", func(t *testing.T) {
		g := newTestGate(always, make(chan struct{}), time.Hour)
		var up atomic.Bool
		res := async(func() error {
			return g.retry("a", 1, func() error {
				if !up.Load() {
					return errRefused
				}
				return nil
			})
		})
		mustBlock(t, res, "unreachable")
		up.Store(true)
		g.observe("a", nil) // the heartbeat's reply
		mustReturn(t, res, nil, "after the heartbeat")
	})

	t.Run("the error goes back to Raft once it no longer replicates", func(t *testing.T) {
		var wanted atomic.Bool
		wanted.Store(true)
		g := newTestGate(func(raft.ServerID, uint64) bool { return wanted.Load() }, make(chan struct{}), time.Millisecond)
		res := async(func() error { return g.retry("a", 1, func() error { return errRefused }) })
		mustBlock(t, res, "while replicating")
		wanted.Store(false)
		mustReturn(t, res, errRefused, "after it stopped")
	})
}

// The gate tells heartbeats from other AppendEntries as NetworkTransport
// does: a heartbeat (what Raft's heartbeat loop sends) is never held, a
// replication request always may be, including an empty one that only
// carries the commit index.
func TestIsHeartbeat(t *testing.T) {
	hb := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{ID: []byte("l"), Addr: []byte("l:1")}, Term: 3}
	if !isHeartbeat(hb) {
		t.Error("a heartbeat is not recognised")
	}
	for name, req := range map[string]*raft.AppendEntriesRequest{
		"entries":      {Term: 3, PrevLogEntry: 10, PrevLogTerm: 3, Entries: []*raft.Log{{Index: 11}}, LeaderCommitIndex: 10},
		"commit index": {Term: 3, PrevLogEntry: 10, PrevLogTerm: 3, LeaderCommitIndex: 10},
		"first entry":  {Term: 3, Entries: []*raft.Log{{Index: 1}}},
	} {
		if isHeartbeat(req) {
			t.Errorf("%s: taken for a heartbeat", name)
		}
	}
}
