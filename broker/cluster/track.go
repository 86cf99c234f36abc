package cluster

import (
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// followerProgress is what the leader last heard from one follower.
type followerProgress struct {
	match       uint64    // highest log index the follower has, as it reported
	lastContact time.Time // last successful AppendEntries
}

// tracker records, from the leader's side of the transport, how far each
// follower got: Raft keeps its match indexes to itself, and the lag per
// follower is what an operator (and a rolling upgrade) needs to see.
type tracker struct {
	mu sync.Mutex
	by map[raft.ServerID]followerProgress
}

func (t *tracker) record(id raft.ServerID, resp *raft.AppendEntriesResponse) {
	if resp == nil || !resp.Success {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.by == nil {
		t.by = make(map[raft.ServerID]followerProgress)
	}
	p := t.by[id]
	p.match = max(p.match, resp.LastLog)
	p.lastContact = time.Now()
	t.by[id] = p
}

func (t *tracker) get(id raft.ServerID) (followerProgress, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p, ok := t.by[id]
	return p, ok
}

// reset forgets everything (on losing leadership: another leader's
// followers report to it, not to us).
func (t *tracker) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.by)
}

// trackingTransport is the NetworkTransport with the replies to
// AppendEntries recorded in a tracker. Every other method, and the
// optional interfaces Raft looks for, come from the embedded transport.
//
// Only the AppendEntries that do not go through a pipeline are recorded:
// the heartbeats (one to each follower every HeartbeatTimeout/10 to /5,
// pipelining or not), and the appends of a follower catching up. The
// pipelined appends' replies go to Raft's own goroutine directly: reading
// them on the way would put one more goroutine hand-off on the path of
// every commit. So a follower's match is at most one heartbeat period old
// (its lag may include the entries appended during that period).
type trackingTransport struct {
	*raft.NetworkTransport
	t *tracker
}

func (tt *trackingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	err := tt.NetworkTransport.AppendEntries(id, target, args, resp)
	if err == nil {
		tt.t.record(id, resp)
	}
	return err
}
