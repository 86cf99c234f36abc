package cluster

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// replicationGate holds the leader's replication RPCs to a member the
// transport could not reach until a heartbeat reaches it again.
//
// hashicorp/raft (v1.7.2) sleeps before each attempt to replicate to a
// member whose last attempts failed: 10 ms, doubling per failure up to
// 10.24 s (failureWait and maxFailureScale in its replication.go), and
// nothing cuts the sleep short. A member that was down for ten seconds or
// more (a restart with a large store, a node lost for a while) is thus sent
// the entries it missed up to 10 s after it is back, and a rolling upgrade
// waits that long for each member. Heartbeats run apart, never back off
// beyond half the heartbeat timeout, and are never held here: they are
// the probe. A replication RPC (AppendEntries that is not a heartbeat,
// InstallSnapshot) to a member whose last RPC failed waits until a
// heartbeat answers, then goes out: Raft counts only the failures that
// found the member gone, so its sleep stays at tens of milliseconds, and
// the member is caught up within about half a heartbeat timeout of being
// back. Raft tolerates any delay of an RPC, so holding one changes
// nothing it relies on; a wait ends with an error when this member stops
// leading, the member leaves the configuration, or this member closes.
type replicationGate struct {
	log  *slog.Logger
	done <-chan struct{} // closed when this member closes
	// wanted reports whether RPCs to a member are still wanted: this
	// member leads and the member is in its configuration. Checked every
	// recheck while an RPC waits (the RPC's own goroutine cannot be told
	// when Raft stops replicating to the member).
	wanted  func(raft.ServerID) bool
	recheck time.Duration

	mu   sync.Mutex
	down map[raft.ServerID]chan struct{} // closed when the member answers again
}

// errNotReplicating ends an RPC held for an unreachable member that is no
// longer replicated to.
var errNotReplicating = errors.New("cluster: member unreachable and no longer replicated to")

// defaultGateRecheck is how often a held RPC checks it is still wanted.
const defaultGateRecheck = time.Second

// isHeartbeat reports whether req is one of Raft's heartbeats: the test
// NetworkTransport applies on the receiving side.
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	return req.Term != 0 && req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

// observe records the outcome of an RPC to id: an error marks the member
// unreachable, a reply reachable (waking the RPCs held for it).
func (g *replicationGate) observe(id raft.ServerID, err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	ch, down := g.down[id]
	switch {
	case err != nil && !down:
		if g.down == nil {
			g.down = make(map[raft.ServerID]chan struct{})
		}
		g.down[id] = make(chan struct{})
	case err == nil && down:
		close(ch)
		delete(g.down, id)
		g.log.Info("cluster: member reachable again; replicating to it", "member", string(id))
	}
}

// wait returns at once while id is reachable; otherwise when a reply from
// id marks it reachable again (nil), or with errNotReplicating once RPCs
// to it are no longer wanted or this member closes.
func (g *replicationGate) wait(id raft.ServerID) error {
	g.mu.Lock()
	ch := g.down[id]
	g.mu.Unlock()
	if ch == nil {
		return nil
	}
	t := time.NewTicker(g.recheck)
	defer t.Stop()
	for {
		select {
		case <-ch:
			return nil
		case <-g.done:
			return errNotReplicating
		case <-t.C:
			if !g.wanted(id) {
				return errNotReplicating
			}
		}
	}
}

// reset forgets which members were unreachable, letting every held RPC go
// (on a change of leadership: the next term's replication starts afresh).
func (g *replicationGate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, ch := range g.down {
		close(ch)
		delete(g.down, id)
	}
}
