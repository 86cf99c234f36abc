package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/adminapi"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// Member is one member of the cluster as the configuration names it.
type Member struct {
	// ID is the member's stable identity (in Kubernetes, the pod name).
	ID string
	// RaftAddress is where the other members reach its replication port.
	RaftAddress string
	// ClientAddress is where MQTT clients reach it (host:port), handed to
	// clients as the Server Reference when it leads.
	ClientAddress string
}

// Timing holds Raft's timeouts; zero fields take the defaults below (the
// timeouts: broker/config's, which the member's configuration documents).
type Timing struct {
	Heartbeat     time.Duration // follower: no contact for one to two of this starts an election
	Election      time.Duration // candidate: election timeout
	LeaderLease   time.Duration // leader: steps down without a majority's contact this long
	Commit        time.Duration // heartbeat period when idle (50ms)
	SnapshotEvery uint64        // log entries between snapshots (8192)
	TrailingLogs  uint64        // entries kept after a snapshot for slow followers (10240)
}

// snapshotCheck is how often a member compares its log with
// Timing.SnapshotEvery (Raft waits between one and two of these).
const snapshotCheck = 2 * time.Second

// Config configures a member.
type Config struct {
	// ID of this member; it must be one of Members when Bootstrap is set.
	ID string
	// Dir holds the member's state: store/ (Pebble), raft/ (log, snapshots).
	Dir string
	// Bind is the replication listen address.
	Bind string
	// Members are the members this one knows: the initial voters when
	// bootstrapping, and the client addresses of every possible leader.
	Members []Member
	// Bootstrap: a member with no state forms the cluster from Members
	// (every initial member bootstraps the same list; Raft makes that
	// safe). A member without Bootstrap waits to be added by the leader.
	Bootstrap bool
	// AdoptDir is where a single node's store may be found (the broker's
	// data directory). A bootstrapping member with no Raft state adopts
	// the store it finds there as the cluster's first state (adopt.go);
	// a member that finds one there and cannot adopt it refuses to start
	// (ErrWrongStore). Empty: never looked for.
	AdoptDir string
	// Secret authenticates replication connections (MinSecretSize bytes
	// at least; the same on every member).
	Secret []byte
	// Store configures the member's Pebble store (its Durability is
	// ignored: applies are not fsynced, the Raft log is).
	Store  pebblestore.Options
	Timing Timing
	Logger *slog.Logger
	// DialAddress, when set, rewrites the address a peer is dialled at
	// (tests put a fault-injecting proxy between each pair of members).
	DialAddress func(peerAddress string) string
	// DialIDs maps member IDs to the address they are dialled at instead
	// of their replication address (a NAT; the e2e node agent, where pod
	// names do not resolve). A member's ID is found at each dial, among
	// Members and in the latest Raft configuration, so an entry also
	// serves a member added at run time. DialAddress, when set, wins.
	DialIDs map[string]string

	// readsFormat and announceFormat, when set (tests), make the member
	// read and announce another entry format than its build's (format.go):
	// an earlier build, or one swapped after it answered.
	readsFormat, announceFormat uint8
}

// Role is a member's part in the cluster (the admin API's type).
type Role = adminapi.Role

// Roles.
const (
	Leader    = adminapi.RoleLeader
	Follower  = adminapi.RoleFollower
	Candidate = adminapi.RoleCandidate
	Shutdown  = adminapi.RoleShutdown
)

// Serving says whether this member serves MQTT clients, and if not, who
// does.
type Serving struct {
	// Serving is true on the leader once it applied every entry of earlier
	// terms: the engine may recover from the store and accept clients.
	Serving bool
	// Term of the leadership that serves (0 when not serving).
	Term uint64
	// LeaderID and LeaderClientAddress name the leader as far as this
	// member knows ("" when there is none, or its address is unknown).
	LeaderID            string
	LeaderClientAddress string
}

// Node is one member of a replicated Bollard.
type Node struct {
	cfg    Config
	log    *slog.Logger
	raft   *raft.Raft
	trans  *trackingTransport
	stream *streamLayer
	logs   *logStore
	snaps  *raft.FileSnapshotStore
	st     *replStore
	fsm    *fsm
	track  tracker

	mu      sync.Mutex
	serving Serving
	changed chan struct{} // closed and replaced on every change of serving
	members map[string]Member
	// raftRef is raft for the transport's dials, which may start before
	// NewRaft returns.
	raftRef atomic.Pointer[raft.Raft]
	// formatMu keeps raising the cluster's format and adding a member
	// apart (format.go).
	formatMu sync.Mutex

	done      chan struct{}
	doneOnce  sync.Once
	err       error
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
}

func (c *Config) validate() error {
	switch {
	case c.ID == "":
		return errors.New("cluster: member ID is empty")
	case c.Dir == "":
		return errors.New("cluster: no directory")
	case c.Bind == "":
		return errors.New("cluster: no replication bind address")
	case len(c.Secret) < MinSecretSize:
		return fmt.Errorf("cluster: the replication secret must have at least %d bytes, it has %d", MinSecretSize, len(c.Secret))
	}
	seen := map[string]bool{}
	self := false
	for _, m := range c.Members {
		if m.ID == "" || m.RaftAddress == "" {
			return fmt.Errorf("cluster: member %q needs an ID and a replication address", m.ID)
		}
		if seen[m.ID] {
			return fmt.Errorf("cluster: member %q listed twice", m.ID)
		}
		seen[m.ID] = true
		self = self || m.ID == c.ID
	}
	if c.Bootstrap && !self {
		return fmt.Errorf("cluster: bootstrapping member %q is not among the members", c.ID)
	}
	return nil
}

func (t Timing) withDefaults() Timing {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&t.Heartbeat, config.DefaultHeartbeatTimeout)
	def(&t.Election, config.DefaultElectionTimeout)
	def(&t.LeaderLease, min(config.DefaultLeaderLeaseTimeout, t.Heartbeat))
	def(&t.Commit, 50*time.Millisecond)
	if t.SnapshotEvery == 0 {
		t.SnapshotEvery = 8192
	}
	if t.TrailingLogs == 0 {
		t.TrailingLogs = 10240
	}
	return t
}

// Open starts a member: it opens the member's store (restoring the latest
// snapshot if the store is behind it), joins Raft and starts replicating.
// It returns before an election; watch State.
func Open(cfg Config) (*Node, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Timing = cfg.Timing.withDefaults()
	n := &Node{cfg: cfg, log: cfg.Logger.With("component", "cluster", "member", cfg.ID),
		changed: make(chan struct{}), done: make(chan struct{}), members: map[string]Member{}}
	for _, m := range cfg.Members {
		n.members[m.ID] = m
	}
	if err := n.open(); err != nil {
		return nil, errors.Join(err, n.closeParts())
	}
	n.wg.Add(2)
	go n.watchLeadership()
	go n.agreeFormat() // format.go
	return n, nil
}

func (n *Node) open() error {
	cfg := n.cfg
	raftDir := filepath.Join(cfg.Dir, "raft")
	hlog := hclogFor(n.log) // raftlog.go
	if err := n.settleAdoption(hlog); err != nil {
		return err
	}
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}

	var err error
	n.logs, err = openLogStore(raftDir, n.log)
	if err != nil {
		return err
	}
	n.snaps, err = raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog)
	if err != nil {
		return fmt.Errorf("cluster: open the snapshots: %w", err)
	}
	opts := cfg.Store
	opts.Durability = pebblestore.Interval // applies are not fsynced: the log is durable
	// The Raft log is the write-ahead log: Pebble's own would write every
	// entry a second time (docs/durability.md, "One log per member").
	opts.NoWAL = true
	if opts.Stalls == nil {
		opts.Stalls = &store.Stalls{} // one count across the store's reopenings
	}
	n.st = &replStore{dir: cfg.Dir, opts: opts, applyTimeout: 10 * time.Second, done: n.done,
		pending: make(chan pendingCommit, maxPendingCommits), logFsyncs: &n.logs.fs.fsyncs}
	if err := n.st.openLocal(); err != nil {
		return fmt.Errorf("cluster: open the store: %w", err)
	}
	if err := n.catchUpWithSnapshot(); err != nil {
		return err
	}
	if err := n.recoverOnRequest(); err != nil { // recover.go
		return err
	}

	ln, err := net.Listen("tcp", cfg.Bind)
	if err != nil {
		return fmt.Errorf("cluster: listen for replication on %s: %w", cfg.Bind, err)
	}
	n.stream = newStreamLayer(ln, cfg.Secret, n.log, formatInfo{id: cfg.ID, reads: n.announces()})
	if cfg.DialAddress != nil || len(cfg.DialIDs) > 0 {
		n.stream.dialAddr = n.dialAddress
	}
	n.trans = &trackingTransport{
		NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream: n.stream, MaxPool: 3, Timeout: 10 * time.Second, Logger: hlog,
		}),
		t: &n.track,
		gate: &replicationGate{
			log: n.log, done: n.done, wanted: n.replicatesTo, probe: cfg.Timing.Heartbeat / 10,
		},
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.ID)
	rc.Logger = hlog
	rc.HeartbeatTimeout = cfg.Timing.Heartbeat
	rc.ElectionTimeout = cfg.Timing.Election
	rc.LeaderLeaseTimeout = cfg.Timing.LeaderLease
	rc.CommitTimeout = cfg.Timing.Commit
	rc.SnapshotThreshold = cfg.Timing.SnapshotEvery
	// Raft looks at the threshold only this often (its default, 120s,
	// let the log grow for minutes past SnapshotEvery entries, and a
	// member that was down meanwhile replay all of it); the look is cheap.
	rc.SnapshotInterval = snapshotCheck
	rc.TrailingLogs = cfg.Timing.TrailingLogs
	// The store is the FSM's state and survives restarts: replaying the
	// log over it skips what it already applied (ApplyReplicated), so a
	// restart need not copy the latest snapshot back in.
	rc.NoSnapshotRestoreOnStart = true
	// Apply returns once the entry is queued, not once the leader's loop
	// took it: the engine's committer can queue the next group while the
	// leader fsyncs the previous ones, and the leader writes every queued
	// entry with one fsync (group commit across log entries).
	rc.BatchApplyCh = true

	f := &fsm{log: n.log, st: n.st, dir: cfg.Dir, fatal: n.fail, logs: n.logs, reads: n.reads()}
	n.fsm = f
	if cfg.Bootstrap {
		has, err := raft.HasExistingState(n.logs, n.logs, n.snaps)
		if err != nil {
			return fmt.Errorf("cluster: %w", err)
		}
		if !has {
			var servers []raft.Server
			for _, m := range cfg.Members {
				servers = append(servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddress)})
			}
			if err := raft.BootstrapCluster(rc, n.logs, n.logs, n.snaps, n.trans, raft.Configuration{Servers: servers}); err != nil {
				return fmt.Errorf("cluster: bootstrap: %w", err)
			}
			n.log.Info("bootstrapped the cluster", "members", len(servers))
		}
	}
	n.raft, err = raft.NewRaft(rc, f, n.logs, n.logs, n.snaps, n.trans)
	if err != nil {
		return fmt.Errorf("cluster: start raft: %w", err)
	}
	n.st.raft = n.raft
	n.raftRef.Store(n.raft)
	go n.st.waitOutcomes()
	return nil
}

// catchUpWithSnapshot restores the latest local snapshot when the store is
// behind it (its files were lost or replaced): Raft replays only the log
// after the snapshot.
func (n *Node) catchUpWithSnapshot() error {
	metas, err := n.snaps.List()
	if err != nil || len(metas) == 0 {
		return err
	}
	latest := metas[0]
	if applied := n.st.cur().AppliedIndex(); applied >= latest.Index {
		return nil
	}
	_, rc, err := n.snaps.Open(latest.ID)
	if err != nil {
		return fmt.Errorf("cluster: open snapshot %s: %w", latest.ID, err)
	}
	defer rc.Close()
	n.log.Warn("store is behind the latest snapshot; restoring it", "applied", n.st.cur().AppliedIndex(), "snapshot", latest.Index)
	return n.st.restore(func(dir string) error { return untar(rc, dir) })
}

// leaderRefresh is how often the leader's identity is read from Raft
// besides its observations.
const leaderRefresh = time.Second

// observeHook, when set (tests), runs before the leadership observer is
// registered.
var observeHook func(*Node)

// watchLeadership turns Raft's leadership changes into Serving: a new
// leader serves once a barrier shows it applied every earlier entry.
func (n *Node) watchLeadership() {
	defer n.wg.Done()
	obs := make(chan raft.Observation, 16)
	o := raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	})
	if observeHook != nil {
		observeHook(n)
	}
	n.raft.RegisterObserver(o)
	defer n.raft.DeregisterObserver(o)
	// Raft runs before the observer is registered, and drops observations
	// the channel has no room for: the leader it learnt meanwhile is read
	// now, and again every leaderRefresh, or a member that rejoined a
	// cluster with a leader could go on naming none (refusing clients
	// without a Server Reference) until the next election.
	n.refreshLeader()
	refresh := time.NewTicker(leaderRefresh)
	defer refresh.Stop()
	leaderCh := n.raft.LeaderCh()
	for {
		select {
		case <-n.done:
			n.setServing(false, 0)
			return
		case <-obs:
			n.refreshLeader()
		case <-refresh.C:
			n.refreshLeader()
		case isLeader := <-leaderCh:
			n.trans.gate.reset()
			if !isLeader {
				n.track.reset()
				n.setServing(false, 0)
				continue
			}
			n.track.lead(time.Now())
			term := n.raft.CurrentTerm()
			n.log.Info("elected; applying the log before serving", "term", term)
			t0 := time.Now()
			if err := n.raft.Barrier(30 * time.Second).Error(); err != nil {
				n.log.Warn("leader could not apply the log before serving", "err", err)
				continue
			}
			if n.raft.State() == raft.Leader && n.raft.CurrentTerm() == term {
				n.log.Info("leading and serving", "term", term, "barrier", time.Since(t0).Round(time.Millisecond).String())
				n.setServing(true, term)
			}
		}
	}
}

func (n *Node) refreshLeader() {
	_, id := n.raft.LeaderWithID()
	n.mu.Lock()
	defer n.mu.Unlock()
	if string(id) == n.serving.LeaderID && (id == "" || n.serving.LeaderClientAddress != "") {
		return
	}
	n.serving.LeaderID = string(id)
	n.serving.LeaderClientAddress = n.members[string(id)].ClientAddress
	n.notifyLocked()
}

func (n *Node) setServing(on bool, term uint64) {
	_, id := n.raft.LeaderWithID()
	n.mu.Lock()
	defer n.mu.Unlock()
	n.serving = Serving{Serving: on, Term: term, LeaderID: string(id), LeaderClientAddress: n.members[string(id)].ClientAddress}
	n.notifyLocked()
}

func (n *Node) notifyLocked() {
	close(n.changed)
	n.changed = make(chan struct{})
}

// State returns whether this member serves, and a channel closed at the
// next change.
func (n *Node) State() (Serving, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.serving, n.changed
}

// Serving reports whether this member serves MQTT clients now and, when it
// does not, the leader's client address to send them to ("" when
// unknown). It is the broker host's Role.
func (n *Node) Serving() (bool, string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.serving.Serving, n.serving.LeaderClientAddress
}

// Store is the member's store.Store: reads are local; Commit replicates
// and succeeds only on the serving leader.
func (n *Node) Store() store.Store { return n.st }

// TransferLeadership hands leadership to the most up-to-date follower and
// waits for the outcome. It fails on a member that is not the leader.
func (n *Node) TransferLeadership() error {
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := n.raft.LeadershipTransfer().Error(); err != nil {
		return fmt.Errorf("cluster: leadership transfer: %w", err)
	}
	return nil
}

// TransferLeadershipTo hands leadership to the voter with the given ID
// (the operator picks a follower it already made ready to take the
// clients) and waits for the outcome. It fails on a member that is not
// the leader, and for an ID that is not another voter of the
// configuration.
func (n *Node) TransferLeadershipTo(id string) error {
	if id == "" || id == n.cfg.ID {
		return fmt.Errorf("%w: a transfer needs another member's ID", ErrInvalidMember)
	}
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	cf := n.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return fmt.Errorf("cluster: leadership transfer: %w", err)
	}
	for _, sv := range cf.Configuration().Servers {
		if sv.ID != raft.ServerID(id) {
			continue
		}
		if sv.Suffrage != raft.Voter {
			return fmt.Errorf("%w: %s does not vote", ErrInvalidMember, id)
		}
		if err := n.raft.LeadershipTransferToServer(sv.ID, sv.Address).Error(); err != nil {
			return fmt.Errorf("cluster: leadership transfer to %s: %w", id, err)
		}
		return nil
	}
	return fmt.Errorf("%w: %s is not a member", ErrInvalidMember, id)
}

// AddMember adds m to the cluster (on the leader): first as a non-voter
// that receives the log (or a snapshot), then, once it has caught up to
// the commit index of the moment it was added, as a voter. It fails when
// ctx ends before the member caught up; the member then stays a non-voter
// (call RemoveMember, or AddMember again).
func (n *Node) AddMember(ctx context.Context, m Member) error {
	if m.ID == "" || m.RaftAddress == "" {
		return fmt.Errorf("%w: a member needs an ID and a replication address", ErrInvalidMember)
	}
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	n.mu.Lock()
	n.members[m.ID] = m
	n.mu.Unlock()
	id, addr := raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddress)
	if err := n.addNonvoter(ctx, m); err != nil {
		return err
	}
	target := n.raft.CommitIndex()
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if p, ok := n.track.get(id); ok && p.match >= target {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("cluster: %s did not catch up to index %d: %w", m.ID, target, ctx.Err())
		case <-n.done:
			return store.ErrClosed
		case <-t.C:
		}
	}
	if err := n.raft.AddVoter(id, addr, 0, 0).Error(); err != nil {
		return fmt.Errorf("cluster: promote %s to a voter: %w", m.ID, err)
	}
	return nil
}

// addNonvoter adds m as a non-voter once it answers that it reads the
// cluster's entry format (format.go); once in the configuration, it is
// among those asked before the format is raised.
func (n *Node) addNonvoter(ctx context.Context, m Member) error {
	n.formatMu.Lock()
	defer n.formatMu.Unlock()
	if err := n.checkNewMember(ctx, m); err != nil {
		return err
	}
	if err := n.raft.AddNonvoter(raft.ServerID(m.ID), raft.ServerAddress(m.RaftAddress), 0, 0).Error(); err != nil {
		return fmt.Errorf("cluster: add %s as a non-voter: %w", m.ID, err)
	}
	return nil
}

// ErrInvalidMember is returned for a membership change that names no
// usable member.
var ErrInvalidMember = errors.New("cluster: invalid member")

// RemoveMember removes a member through the log (on the leader).
func (n *Node) RemoveMember(id string) error {
	if id == "" {
		return fmt.Errorf("%w: no member ID", ErrInvalidMember)
	}
	if n.raft.State() != raft.Leader {
		return ErrNotLeader
	}
	if err := n.raft.RemoveServer(raft.ServerID(id), 0, 0).Error(); err != nil {
		return fmt.Errorf("cluster: remove %s: %w", id, err)
	}
	return nil
}

// MemberStatus is one member as the cluster configuration has it; Status
// is a member's view of the cluster. Both are the admin API's types (GET
// /v1/cluster), defined once in broker/adminapi for the broker and the
// operator.
type (
	MemberStatus = adminapi.ClusterMember
	Status       = adminapi.ClusterStatus
	ClusterLog   = adminapi.ClusterLog
)

// Status reports the member's view; it is cheap enough for every scrape.
func (n *Node) Status() Status {
	srv, _ := n.State()
	stats := n.raft.Stats()
	num := func(k string) uint64 { v, _ := strconv.ParseUint(stats[k], 10, 64); return v }
	s := Status{
		ID: n.cfg.ID, Role: roleOf(n.raft.State()), Serving: srv.Serving,
		Term: n.raft.CurrentTerm(), LeaderID: srv.LeaderID, LeaderClientAddress: srv.LeaderClientAddress,
		LastLogIndex: n.raft.LastIndex(), CommitIndex: n.raft.CommitIndex(), AppliedIndex: n.raft.AppliedIndex(),
		LastSnapshotIndex: num("last_snapshot_index"), RefusedConnections: n.stream.refused.Load(),
		LastLogTerm: num("last_log_term"), EntryFormat: int(n.st.writeFormat()), ReadsFormat: int(n.reads()),
		Log: n.logs.stats(),
	}
	if cf := n.raft.GetConfiguration(); cf.Error() == nil {
		n.mu.Lock()
		clients := make(map[raft.ServerID]string, len(n.members))
		for id, m := range n.members {
			clients[raft.ServerID(id)] = m.ClientAddress
		}
		n.mu.Unlock()
		for _, sv := range cf.Configuration().Servers {
			ms := MemberStatus{ID: string(sv.ID), RaftAddress: string(sv.Address), ClientAddress: clients[sv.ID],
				Voter: sv.Suffrage == raft.Voter}
			if s.Role == Leader && sv.ID != raft.ServerID(n.cfg.ID) {
				if p, ok := n.track.get(sv.ID); ok {
					match, lag := p.match, uint64(0)
					if s.LastLogIndex > match {
						lag = s.LastLogIndex - match
					}
					ago := time.Since(p.lastContact).Milliseconds()
					ms.MatchIndex, ms.Lag, ms.LastContactMilli = &match, &lag, &ago
				} else if since := n.track.leaderSince(); !since.IsZero() {
					// Not heard from since this member leads: its lag is
					// unknown, and its silence at least this long.
					ago := time.Since(since).Milliseconds()
					ms.LastContactMilli = &ago
				}
			}
			s.Members = append(s.Members, ms)
		}
	}
	sort.Slice(s.Members, func(i, j int) bool { return s.Members[i].ID < s.Members[j].ID })
	return s
}

func roleOf(s raft.RaftState) Role {
	switch s {
	case raft.Leader:
		return Leader
	case raft.Follower:
		return Follower
	case raft.Candidate:
		return Candidate
	}
	return Shutdown
}

// Done is closed when the member stopped: Close, or a failure to apply the
// log (Err says which).
func (n *Node) Done() <-chan struct{} { return n.done }

// Err is the failure that stopped the member, nil after a plain Close.
func (n *Node) Err() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.err
}

// fail stops the member after its store could not apply an entry: it
// must not vote or lead with a state that does not follow the log. A
// restart replays the log from the last entry it applied.
func (n *Node) fail(err error) {
	n.mu.Lock()
	if n.err == nil {
		n.err = err
	}
	n.mu.Unlock()
	n.log.Error("member stops: its store cannot follow the log", "err", err)
	go func() { _ = n.Close() }()
}

// Close leaves Raft (without leaving the cluster: a restarted member
// rejoins with its state) and closes the store.
func (n *Node) Close() error {
	n.closeOnce.Do(func() {
		n.doneOnce.Do(func() { close(n.done) })
		n.wg.Wait()
		n.closeErr = n.closeParts()
	})
	return n.closeErr
}

func (n *Node) closeParts() error {
	var errs []error
	if n.raft != nil {
		errs = append(errs, n.raft.Shutdown().Error())
	}
	if n.trans != nil {
		errs = append(errs, n.trans.Close())
	}
	if n.stream != nil {
		_ = n.stream.Close()
		n.stream.wait()
	}
	if n.logs != nil {
		errs = append(errs, n.logs.Close())
	}
	if n.st != nil && n.st.st != nil {
		if err := n.st.Close(); err != nil && !errors.Is(err, store.ErrClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// dialAddress is where a peer is dialled: Config.DialAddress's answer,
// or the Config.DialIDs entry of the member at that address.
func (n *Node) dialAddress(a raft.ServerAddress) string {
	if n.cfg.DialAddress != nil {
		return n.cfg.DialAddress(string(a))
	}
	if d, ok := n.cfg.DialIDs[n.memberAt(a)]; ok {
		return d
	}
	return string(a)
}

// memberAt is the ID of the member at a replication address: a member
// this one was configured with or added, else one of the latest Raft
// configuration (read without waiting for Raft's loop); "" when none.
func (n *Node) memberAt(a raft.ServerAddress) string {
	n.mu.Lock()
	for id, m := range n.members {
		if raft.ServerAddress(m.RaftAddress) == a {
			n.mu.Unlock()
			return id
		}
	}
	n.mu.Unlock()
	r := n.raftRef.Load()
	if r == nil {
		return ""
	}
	for _, s := range r.GetConfiguration().Configuration().Servers {
		if s.Address == a {
			return string(s.ID)
		}
	}
	return ""
}

// replicatesTo reports whether this member leads in term and id is in
// its latest configuration, that is whether Raft still replicates to id
// from here in that term (replicationGate). No read waits for Raft's loop.
func (n *Node) replicatesTo(id raft.ServerID, term uint64) bool {
	r := n.raftRef.Load()
	if r == nil || r.State() != raft.Leader || r.CurrentTerm() != term {
		return false
	}
	return slices.ContainsFunc(r.GetConfiguration().Configuration().Servers, func(s raft.Server) bool { return s.ID == id })
}
