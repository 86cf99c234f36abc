// Package replica is the broker engine of a cluster member, as the host
// runs it: one engine per leadership term of this member.
//
// Only the leader serves MQTT clients. When this member becomes the
// leader and has applied the whole log (cluster.Node's State), Engine
// creates an engine.Server over the replicated store and starts it, which
// recovers sessions, subscriptions, retained messages and inflight state
// from the member's store exactly as a restart does; from then on the
// connections the host accepts go to it. When the member stops leading,
// that engine hands its clients over (MQTT 5.0: DISCONNECT 0x9C Use
// another server naming the new leader) and is dropped: its memory is not
// trusted for a later term, which recovers afresh. While it does not
// lead, a never-started engine refuses clients (CONNACK 0x9C with the
// leader's address, or 3.1.1 Server unavailable) and answers the admin
// endpoint.
package replica

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
)

// Node is what Engine needs of a cluster member; *cluster.Node implements it.
type Node interface {
	State() (cluster.Serving, <-chan struct{})
	TransferLeadership() error
	TransferLeadershipTo(id string) error
}

// Engine runs a cluster member's engines. It implements the host's Engine
// contract; give the host the Node as its Role.
type Engine struct {
	node    Node
	log     *slog.Logger
	newTerm func(cfg *config.Config) (*engine.Server, error)
	refuser *engine.Server

	mu      sync.Mutex
	cfg     *config.Config
	self    string         // this member's ID (cluster.memberID)
	cur     *engine.Server // the engine of the term this member serves; nil while it does not
	term    uint64
	retired sync.WaitGroup // engines handing their clients over
	// stale is the serving engine a failed leadership transfer left
	// quiesced: follow replaces it with a fresh engine for the same term
	// (woken through restart).
	stale   *engine.Server
	restart chan struct{} // capacity 1
	stop    chan struct{}
	stopped chan struct{}
	started bool
	stopOne sync.Once

	ho handover // readiness handover (handover.go)
}

// New prepares an Engine; newTerm builds the engine of a term over the
// replicated store (engine.New with the member's options). The refuser is
// built at once, so a bad configuration fails here.
func New(cfg *config.Config, node Node, log *slog.Logger, newTerm func(cfg *config.Config) (*engine.Server, error)) (*Engine, error) {
	refuser, err := newTerm(cfg)
	if err != nil {
		return nil, err
	}
	e := &Engine{
		node: node, log: log, newTerm: newTerm, refuser: refuser, cfg: cfg.Clone(), self: cfg.Cluster.MemberID,
		stop: make(chan struct{}), stopped: make(chan struct{}), restart: make(chan struct{}, 1),
	}
	e.ho.init()
	e.SetHandoverLimits(handoverLimitsOf(cfg))
	return e, nil
}

// Start begins following the member's leadership and returns: unlike a
// single node's, a member's recovery happens when it is elected.
func (e *Engine) Start(context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started {
		return errors.New("replica: already started")
	}
	e.started = true
	go e.follow()
	return nil
}

// follow starts an engine for every term this member serves and retires
// it when the term ends.
func (e *Engine) follow() {
	defer close(e.stopped)
	for {
		st, changed := e.node.State()
		e.mu.Lock()
		cur, term, stale := e.cur, e.term, e.stale
		e.mu.Unlock()
		switch {
		case cur != nil && (!st.Serving || st.Term != term):
			e.retire(cur, term, false)
			cur = nil
		case cur != nil && cur == stale:
			// Still leading after a failed transfer: the clients come
			// back to this member, to a fresh engine recovered once the
			// quiesced one has let go of every session.
			e.retire(cur, term, true)
			cur = nil
		}
		if st.Serving && cur == nil {
			e.begin(st.Term)
			// Re-read the state: leadership may have moved during recovery.
			continue
		}
		select {
		case <-changed:
		case <-e.restart:
		case <-e.stop:
			return
		}
	}
}

// begin recovers a new engine for term and makes it the one that serves.
func (e *Engine) begin(term uint64) {
	e.mu.Lock()
	cfg := e.cfg
	e.mu.Unlock()
	t0 := time.Now()
	srv, err := e.newTerm(cfg)
	if err == nil {
		err = srv.Start(context.Background())
	}
	if err != nil {
		// A failed recovery (for example the store refused a write because
		// leadership moved on) leaves the member refusing clients; the
		// next change of state tries again.
		e.log.Error("cannot serve this term", "term", term, "err", err)
		if srv != nil {
			_ = srv.Drain(context.Background())
		}
		return
	}
	e.mu.Lock()
	e.cur, e.term = srv, term
	e.mu.Unlock()
	// It leads and serves: readiness follows leadership again, and the
	// connections held meanwhile go to the engine.
	e.ho.clear(HandoverSuccessor)
	e.ho.notify()
	e.log.Info("serving MQTT clients", "term", term, "recovery", time.Since(t0).String())
}

// retire hands the clients of a term's engine over to the new leader (to
// this member when it still leads); wait: return once they are gone.
func (e *Engine) retire(srv *engine.Server, term uint64, wait bool) {
	e.mu.Lock()
	if e.cur == srv {
		e.cur = nil
	}
	if e.stale == srv {
		e.stale = nil
	}
	e.mu.Unlock()
	e.ho.clear(HandoverPredecessor)
	ref := e.leaderAddress()
	e.log.Info("stopped serving MQTT clients; handing them over", "term", term, "leader", ref)
	e.retired.Add(1)
	handover := func() {
		defer e.retired.Done()
		ctx, cancel := context.WithTimeout(context.Background(), e.drainTimeout())
		defer cancel()
		if err := srv.Handover(ctx, ref); err != nil && !errors.Is(err, engine.ErrNotStarted) {
			e.log.Warn("handover of a term's clients", "term", term, "err", err)
		}
	}
	if wait {
		handover()
		return
	}
	go handover()
}

// TransferLeadership hands this member's leadership to a follower the way
// a graceful stop does (the admin endpoint's transfer): the term's engine
// quiesces first, so no commit in flight is refused by the transfer, then
// follow hands its clients to the new leader. When the transfer fails the
// member still leads, but its quiesced engine cannot resume: its clients
// are told to come back (DISCONNECT 0x9C naming this member) and a fresh
// engine recovers the term.
func (e *Engine) TransferLeadership() error {
	return e.transfer(context.Background(), "", true)
}

// TransferLeadershipTo is TransferLeadership to the member with the given
// ID (the successor of a readiness handover).
func (e *Engine) TransferLeadershipTo(id string) error {
	return e.transfer(context.Background(), id, true)
}

// quiesceWait bounds how long a leader waits for the commits in flight
// before it transfers its leadership (they take a replication round trip;
// a leader without a quorum's contact never finishes them).
const quiesceWait = 5 * time.Second

func (e *Engine) transfer(ctx context.Context, to string, restartOnFailure bool) error {
	cur := e.current()
	if cur != nil {
		qctx, cancel := context.WithTimeout(ctx, quiesceWait)
		if err := cur.Quiesce(qctx); err != nil {
			e.log.Warn("transferring leadership with commits in flight", "err", err)
		}
		cancel()
	}
	var err error
	if to == "" {
		err = e.node.TransferLeadership()
	} else {
		err = e.node.TransferLeadershipTo(to)
	}
	if err != nil && cur != nil && restartOnFailure {
		e.mu.Lock()
		if e.cur == cur {
			e.stale = cur
		}
		e.mu.Unlock()
		select {
		case e.restart <- struct{}{}:
		default:
		}
	}
	return err
}

// leaderAddress waits a little for the member to learn the new leader:
// at most the leader lease (cluster.leaderLeaseTimeout). A handover's new
// leader is known within a round trip; a leader cut off from the majority
// never learns it, and its clients, whose publishes fail meanwhile, must
// go within its lease (they are then told only that this server is
// shutting down, and try the other members). A drain does not cut the
// wait short: it is what a leader stopping with SIGTERM hands over after
// the leadership transfer, and the new leader is learnt just after.
func (e *Engine) leaderAddress() string {
	deadline := time.NewTimer(e.leaderWait())
	defer deadline.Stop()
	for {
		st, changed := e.node.State()
		if st.Serving || st.LeaderClientAddress != "" {
			return st.LeaderClientAddress
		}
		select {
		case <-changed:
		case <-deadline.C:
			return ""
		}
	}
}

func (e *Engine) leaderWait() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, _, lease := e.cfg.Cluster.Timeouts()
	return lease
}

func (e *Engine) drainTimeout() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cfg.DrainTimeout.D()
}

// current is the serving engine, or nil.
func (e *Engine) current() *engine.Server {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.cur
}

// front is the engine that answers the admin endpoint: the serving one,
// else the refuser.
func (e *Engine) front() *engine.Server {
	if c := e.current(); c != nil {
		return c
	}
	return e.refuser
}

// ServeConn gives the connection to the serving engine; while this member
// prepares to lead, or leads and its engine is still recovering, it holds
// the connection until the engine serves (bounded: see hold); otherwise
// it refuses it.
func (e *Engine) ServeConn(c net.Conn) {
	if srv := e.current(); srv != nil {
		srv.ServeConn(c)
		return
	}
	st, _ := e.node.State()
	if r, _, _ := e.ho.get(); st.Serving || r == HandoverSuccessor {
		e.hold(c)
		return
	}
	e.refuser.RefuseConn(c, st.LeaderClientAddress)
}

// RefuseConn refuses the connection (the host's Role said this member
// does not serve).
func (e *Engine) RefuseConn(c net.Conn, serverReference string) {
	e.refuser.RefuseConn(c, serverReference)
}

// Ready reports whether a term's engine serves, except on a leader that
// steps back for a handover; a successor preparing to lead is ready too.
func (e *Engine) Ready() bool {
	st, _ := e.node.State()
	switch r, _, _ := e.role(st); r {
	case HandoverPredecessor:
		return false
	case HandoverSuccessor:
		return true
	}
	srv := e.current()
	return srv != nil && srv.Ready()
}

// Stats, Sessions, Session and ConfigGeneration answer from the serving
// engine; a member that does not serve holds no sessions in memory, and
// says so through its role on /v1/status.
func (e *Engine) Stats() engine.Stats { return e.front().Stats() }

func (e *Engine) Sessions() []engine.SessionInfo { return e.front().Sessions() }

func (e *Engine) Session(clientID string) (engine.SessionInfo, bool) {
	return e.front().Session(clientID)
}

func (e *Engine) ConfigGeneration() int64 { return e.refuser.ConfigGeneration() }

// ApplyConfig applies cfg to the refuser, to the serving engine and to the
// engines of later terms.
func (e *Engine) ApplyConfig(cfg *config.Config) ([]config.Change, error) {
	restart, err := e.refuser.ApplyConfig(cfg)
	if err != nil {
		return nil, err
	}
	e.SetHandoverLimits(handoverLimitsOf(cfg))
	e.mu.Lock()
	e.cfg = cfg.Clone()
	cur := e.cur
	e.mu.Unlock()
	if cur != nil {
		if _, err := cur.ApplyConfig(cfg); err != nil {
			return nil, fmt.Errorf("replica: serving engine: %w", err)
		}
	}
	return restart, nil
}

// Drain is a member's graceful stop: a leader first quiesces its engine
// (no new publish or delivery is taken; the commits in flight finish and
// their acknowledgements go out, none refused by the transfer), then hands
// leadership to a follower, then its clients over to it (DISCONNECT 0x9C
// naming the new leader: they reconnect once), within ctx.
func (e *Engine) Drain(ctx context.Context) error {
	if st, _ := e.node.State(); st.Serving {
		if err := e.transfer(ctx, "", false); err != nil {
			e.log.Warn("leadership transfer before stopping failed; clients are disconnected without a new leader", "err", err)
		} else {
			// follow retires the term's engine when the state changes.
			e.waitRetired(ctx)
		}
	}
	e.stopOne.Do(func() { close(e.stop) })
	e.mu.Lock()
	started := e.started
	e.mu.Unlock()
	if started {
		<-e.stopped
	}
	var err error
	if srv := e.current(); srv != nil {
		e.mu.Lock()
		e.cur = nil
		e.mu.Unlock()
		err = srv.Drain(ctx)
	}
	done := make(chan struct{})
	go func() { e.retired.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		if err == nil {
			err = fmt.Errorf("replica: drain: %w", ctx.Err())
		}
	}
	_ = e.refuser.Drain(ctx) // never started: marks it draining
	return err
}

// waitRetired waits until no term's engine serves (follow retired it).
func (e *Engine) waitRetired(ctx context.Context) {
	for {
		st, changed := e.node.State()
		if !st.Serving && e.current() == nil {
			return
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return
		case <-time.After(50 * time.Millisecond): // follow updates cur after the state
		}
	}
}
