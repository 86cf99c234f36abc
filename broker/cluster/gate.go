package cluster

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// replicationGate keeps the leader's replication to a member it cannot
// reach from backing off for seconds.
//
// hashicorp/raft (v1.7.2) sleeps before each attempt to replicate to a
// member whose last attempts failed: 10 ms, doubling per failure up to
// 10.24 s (failureWait and maxFailureScale in its replication.go), and
// nothing cuts the sleep short. A member that was down for ten seconds or
// more (a restart with a large store, a node lost for a while) was thus
// sent the entries it missed up to 10 s after it was back, and a rolling
// upgrade waited that long for each member. So a replication request
// (AppendEntries that is not a heartbeat) that fails is not handed back
// to Raft while Raft still replicates to the member: the transport keeps
// it and sends it again every 10 ms for the first second (a member back
// within milliseconds is reached as soon as before), then every probe
// interval (a tenth of the heartbeat timeout), or at once when one of
// Raft's heartbeats (which run apart, are never held, and back off to at
// most half the heartbeat timeout) gets a reply. Raft's failure count
// stays at zero, and the member gets its entries within a probe interval
// of being back. Raft tolerates any delay or repetition of an
// AppendEntries, so a held and repeated request changes nothing its
// safety relies on. InstallSnapshot streams its data once and cannot be
// repeated: it waits for a reply from the member before it is sent.
//
// A held request ends with its error when this member no longer leads in
// the request's term or the member leaves the configuration (checked
// before every new attempt, as Raft cannot tell the transport that it
// stopped replicating to a member), or when this member closes (before
// Raft.Shutdown, which waits for the replication goroutines).
type replicationGate struct {
	log  *slog.Logger
	done <-chan struct{} // closed when this member closes
	// wanted reports whether Raft still replicates to a member from here
	// in a term: this member leads in that term and the member is in its
	// configuration.
	wanted func(id raft.ServerID, term uint64) bool
	probe  time.Duration // how often a held request is sent again, at most

	mu   sync.Mutex
	down map[raft.ServerID]chan struct{} // closed when the member answers again
}

// errNotReplicating ends a wait for an unreachable member that is no
// longer replicated to.
var errNotReplicating = errors.New("cluster: member unreachable and no longer replicated to")

// isHeartbeat reports whether req is one of Raft's heartbeats: the test
// NetworkTransport applies on the receiving side, less its check of the
// leader's address (which this member's Raft always sends).
func isHeartbeat(req *raft.AppendEntriesRequest) bool {
	return req.Term != 0 && req.PrevLogEntry == 0 && req.PrevLogTerm == 0 &&
		len(req.Entries) == 0 && req.LeaderCommitIndex == 0
}

// observe records the outcome of an RPC to id: an error marks the member
// unreachable, a reply reachable (waking the requests held for it).
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
		g.log.Warn("cluster: member unreachable; replication to it is held until it answers", "peer", string(id), "err", err)
	case err == nil && down:
		close(ch)
		delete(g.down, id)
		g.log.Info("cluster: member reachable again; replicating to it", "peer", string(id))
	}
}

// retry sends with rpc until it succeeds, holding it between attempts
// (hold); it returns rpc's last error once Raft no longer replicates to id
// or this member closes.
func (g *replicationGate) retry(id raft.ServerID, term uint64, rpc func() error) error {
	start := time.Now()
	for {
		err := rpc()
		g.observe(id, err)
		if err == nil {
			return nil
		}
		pause := g.probe
		if time.Since(start) < fastRetries {
			pause = min(fastRetry, g.probe)
		}
		if !g.hold(id, term, pause) {
			return err
		}
	}
}

// A failed request is sent again every fastRetry for fastRetries (Raft's
// own first pause is 10 ms, and its pauses stay under 100 ms for about as
// long), then every probe interval.
const (
	fastRetry   = 10 * time.Millisecond
	fastRetries = time.Second
)

// hold waits until id answers a heartbeat or pause passed, and reports
// whether a request to id in term is still wanted.
func (g *replicationGate) hold(id raft.ServerID, term uint64, pause time.Duration) bool {
	g.mu.Lock()
	ch := g.down[id]
	g.mu.Unlock()
	if ch == nil {
		return g.wanted(id, term) // it answered meanwhile
	}
	t := time.NewTimer(pause)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-g.done:
		return false
	}
	return g.wanted(id, term)
}

// wait returns at once while id is reachable; otherwise once a reply from
// id marks it reachable again (nil), or with errNotReplicating once Raft
// no longer replicates to it or this member closes.
func (g *replicationGate) wait(id raft.ServerID, term uint64) error {
	for {
		g.mu.Lock()
		ch := g.down[id]
		g.mu.Unlock()
		if ch == nil {
			return nil
		}
		if !g.hold(id, term, g.probe) {
			return errNotReplicating
		}
	}
}

// reset forgets which members were unreachable, letting every held
// request go (on a change of leadership: the next term's replication
// starts afresh).
func (g *replicationGate) reset() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for id, ch := range g.down {
		close(ch)
		delete(g.down, id)
	}
}
