package cluster

import (
	"io"
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
	// since is when this member became leader (zero while it is not): a
	// follower that has not answered since has not answered for at least
	// that long.
	since time.Time
}

// lead records that this member became leader at t.
func (t *tracker) lead(at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.since = at
}

// leaderSince is when this member became leader (zero if it is not).
func (t *tracker) leaderSince() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.since
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
	t.since = time.Time{}
}

// trackingTransport is the NetworkTransport with the replies to
// AppendEntries recorded in a tracker, and replication to a member that
// could not be reached held until it answers again (replicationGate).
// Every other method, and the optional interfaces Raft looks for, come
// from the embedded transport.
type trackingTransport struct {
	*raft.NetworkTransport
	t    *tracker
	gate *replicationGate
}

func (tt *trackingTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	var err error
	if isHeartbeat(args) {
		err = tt.NetworkTransport.AppendEntries(id, target, args, resp)
		tt.gate.observe(id, err)
	} else {
		err = tt.gate.retry(id, args.Term, func() error {
			return tt.NetworkTransport.AppendEntries(id, target, args, resp)
		})
	}
	if err == nil {
		tt.t.record(id, resp)
	}
	return err
}

func (tt *trackingTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	if err := tt.gate.wait(id, args.Term); err != nil {
		return err
	}
	err := tt.NetworkTransport.InstallSnapshot(id, target, args, resp, data)
	tt.gate.observe(id, err)
	return err
}

func (tt *trackingTransport) AppendEntriesPipeline(id raft.ServerID, target raft.ServerAddress) (raft.AppendPipeline, error) {
	p, err := tt.NetworkTransport.AppendEntriesPipeline(id, target)
	if err != nil {
		tt.gate.observe(id, err)
		return nil, err
	}
	tp := &trackingPipeline{AppendPipeline: p, id: id, t: tt.t, gate: tt.gate, out: make(chan raft.AppendFuture, 128), stop: make(chan struct{})}
	go tp.forward()
	return tp, nil
}

type trackingPipeline struct {
	raft.AppendPipeline
	id       raft.ServerID
	t        *tracker
	gate     *replicationGate
	out      chan raft.AppendFuture
	stop     chan struct{}
	stopOnce sync.Once
}

func (p *trackingPipeline) forward() {
	in := p.AppendPipeline.Consumer()
	for {
		select {
		case f := <-in:
			err := f.Error()
			p.gate.observe(p.id, err)
			if err == nil {
				p.t.record(p.id, f.Response())
			}
			select {
			case p.out <- f:
			case <-p.stop:
				return
			}
		case <-p.stop:
			return
		}
	}
}

func (p *trackingPipeline) Consumer() <-chan raft.AppendFuture { return p.out }

func (p *trackingPipeline) Close() error {
	p.stopOnce.Do(func() { close(p.stop) })
	return p.AppendPipeline.Close()
}
