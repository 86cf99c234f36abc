package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/auth"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/lograte"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/router"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
)

// Errors returned by the Server.
var (
	// ErrNotStarted is returned by Drain before Start.
	ErrNotStarted = errors.New("engine: not started")
	// ErrDraining is returned by Start after Drain.
	ErrDraining = errors.New("engine: draining")
)

// Server is one broker instance over a store.
type Server struct {
	log     *slog.Logger
	now     func() time.Time
	store   store.Store
	router  *router.Router
	stats   *counters
	refused *refusals
	// connErrs counts and logs connections that ended in error
	// (connerrors.go).
	connErrs *connErrors
	// storeErrs counts and logs failed store commits (storeerrors.go).
	storeErrs *storeErrors
	// refusalLog limits the log lines of refused CONNECTs (logRefusal).
	refusalLog lograte.Limiter
	disk       diskSampler
	// censuses counts sessions and queues for Stats (census.go).
	censuses censusTaker
	// sessEnv is the reader, clock and hooks every session shares
	// (Server.env); ApplyConfig replaces it while connections read it.
	sessEnv atomic.Pointer[session.Env]
	com     *committer
	sweep   *sweeper

	cfg   atomic.Pointer[config.Config]
	pol   atomic.Pointer[policySet] // queues.policies of cfg (policy.go)
	polMu sync.Mutex                // serialises applyPolicies
	authz atomic.Pointer[authState]
	fixed *authState // from WithAuthenticator, wins over the config
	gen   atomic.Int64

	// seqMu orders fan-outs: the Seqs a publish assigns in many queues and
	// the submission of its batch to the committer happen as one step, so
	// batches reach the store in Seq order. It is never held across a
	// commit.
	seqMu sync.Mutex
	// early holds a fan-out's entries that may be delivered before its
	// commit, from Route to the batch's submission (route); guarded by
	// seqMu.
	early []router.Early
	// wakes, set under seqMu while a client's publish fans out, collects
	// the connections it makes deliverable for the publishing goroutine
	// to write to (see notify in writer.go).
	wakes atomic.Pointer[wakeList]
	// inlineWakes, set while the publish of an inline commit (inlinecommit.go)
	// runs its onStored on the publisher's read loop, collects the
	// connections it makes deliverable, the publisher's own excepted.
	inlineWakes atomic.Pointer[wakeList]

	mu       sync.Mutex // guards sessions and conns
	sessions map[string]*sessionEntry
	// list holds the sessions of the map in a slice, which the census
	// walks a chunk at a time (census.go); guarded by mu.
	list []*sessionEntry
	// principals counts the sessions (online and offline) of each
	// principal, for sessions.maxSessionsPerPrincipal; guarded by mu.
	principals map[string]int
	conns      map[*conn]struct{}

	logins loginGuard // CONNECT password checks: concurrency cap, back-off
	// refusing counts the connections RefuseConn holds open.
	refusing atomic.Int64

	started  atomic.Bool
	draining atomic.Bool
	quiesced atomic.Bool // Quiesce: no new work; only a drain follows
	connWG   sync.WaitGroup
}

// sessionEntry is a session in the registry with its current connection.
type sessionEntry struct {
	sess      *session.Session
	owner     *conn  // guarded by Server.mu; nil while offline
	principal string // who created it, as counted in Server.principals
	idx       int    // position in Server.list; guarded by Server.mu
	// due is the earliest deadline the sweeper queued for the session
	// (unixNanos), 0 when none is; guarded by sweeper.mu. A deadline at
	// exactly the Unix epoch counts as none: at worst it is queued twice.
	// (No flag beside it: the entry stays in a 48-byte size class.)
	due int64
}

// New builds a Server over st with the validated configuration cfg. The
// server does not own st: the caller closes it after Drain.
func New(cfg *config.Config, st store.Store, opts ...Option) (*Server, error) {
	if cfg == nil || st == nil {
		return nil, errors.New("engine: New needs a config and a store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	o := options{logger: slog.Default(), clock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{log: o.logger, now: o.clock, store: st, router: router.New(), stats: newCounters(), refused: newRefusals(), connErrs: newConnErrors(), storeErrs: newStoreErrors(),
		refusalLog: lograte.Limiter{Every: refusalLogEvery},
		sessions:   make(map[string]*sessionEntry), principals: make(map[string]int), conns: make(map[*conn]struct{})}
	if o.auth != nil {
		s.fixed = &authState{authn: o.auth, authz: o.authz}
		s.fixed.reader, _ = o.authz.(auth.Reader)
	}
	a, err := s.buildAuth(cfg)
	if err != nil {
		return nil, err
	}
	s.authz.Store(a)
	s.sessEnv.Store(s.newEnv())
	s.cfg.Store(cfg.Clone())
	s.pol.Store(newPolicySet(cfg, nil))
	s.gen.Store(cfg.ConfigGeneration)
	return s, nil
}

func (s *Server) config() *config.Config { return s.cfg.Load() }

// Start recovers sessions and retained messages from the store, sweeps the
// ones that expired while the broker was down and starts the expiry
// sweeper. After it returns, the server accepts connections.
func (s *Server) Start(ctx context.Context) error {
	if s.draining.Load() {
		return ErrDraining
	}
	if s.started.Load() {
		return errors.New("engine: already started")
	}
	s.com = newCommitter(s.store, s.stats.commit)
	s.sweep = newSweeper(s)
	if err := s.recover(ctx); err != nil {
		s.com.stop()
		return err
	}
	s.sweep.runDue()
	s.sweep.start()
	s.started.Store(true)
	s.log.Info("broker recovered", "sessions", len(s.sessions), "retained", s.router.RetainedCount())
	return nil
}

// recover loads retained messages and sessions. Sessions that were online
// when the broker stopped count as disconnected now.
func (s *Server) recover(ctx context.Context) error {
	now := s.now()
	var b store.Batch
	err := s.store.LoadRetained(func(m *store.Message) error {
		if m.Expired(now) {
			b.DeleteRetained(m.Topic)
			return nil
		}
		s.router.LoadRetained(m)
		return ctx.Err()
	})
	if err != nil {
		return fmt.Errorf("engine: recovering retained messages: %w", err)
	}
	s.reserveSessions(s.store.Stats().Sessions)
	s.sweep.beginLoad()
	err = s.store.LoadSessions(func(st *store.SessionState) error {
		s.restoreSession(st, now, &b)
		return ctx.Err()
	})
	s.sweep.endLoad()
	if err != nil {
		return fmt.Errorf("engine: recovering sessions: %w", err)
	}
	if err := s.com.commit(&b); err != nil {
		return fmt.Errorf("engine: recovering sessions: %w", err)
	}
	return nil
}

// maxReserve bounds the sessions reserveSessions makes room for: the
// count comes from the store, which a damaged file could inflate.
const maxReserve = 1 << 24

// reserveSessions sizes the registry and the sweeper's heap
// for the n sessions recovery is about to restore: growing a map of a
// million entries one doubling at a time rehashes every entry ~20 times.
func (s *Server) reserveSessions(n int64) {
	if n <= 0 {
		return
	}
	c := int(min(n, maxReserve))
	s.mu.Lock()
	if len(s.sessions) == 0 {
		s.sessions = make(map[string]*sessionEntry, c)
		s.list = make([]*sessionEntry, 0, c)
	}
	s.mu.Unlock()
	s.sweep.reserve(c)
}

func (s *Server) restoreSession(st *store.SessionState, now time.Time, b *store.Batch) {
	lim := &s.policySet().choose(st.Session.ClientID, st.Session.Principal, filtersOf(st.Subscriptions)).limits
	sess := session.Restore(st, lim, s.env())
	sess.MarkDisconnectedAt(now, b)
	e := &sessionEntry{sess: sess, principal: st.Session.Principal}
	s.addSessionLocked(st.Session.ClientID, e)
	for _, sub := range st.Subscriptions {
		if _, err := s.router.Subscribe(st.Session.ClientID, sess, sub); err != nil {
			s.log.Warn("dropping invalid stored subscription", "client", st.Session.ClientID, "filter", sub.Filter, "err", err)
		}
	}
	s.sweep.schedule(e)
}

// env returns the session environment, which every session shares.
func (s *Server) env() *session.Env { return s.sessEnv.Load() }

func (s *Server) newEnv() *session.Env {
	return &session.Env{Reader: s.store, Now: s.now, Hooks: session.Hooks{
		Drop: func(id, reason string, n int) { s.stats.drop(s.log, id, reason, n) },
		ReadError: func(id string, err error) {
			s.log.Error("reading session queue from the store", "client", id, "err", err)
		},
		CanRead: s.canRead,
	}}
}

// Ready reports whether the server has recovered its state and is not
// draining.
func (s *Server) Ready() bool { return s.started.Load() && !s.draining.Load() }

// Drain stops accepting connections, sends 5.0 clients DISCONNECT 0x8B
// (Server shutting down), closes every connection and waits for in-flight
// commits and the expiry sweeper, until ctx is done. The caller closes the
// store afterwards.
func (s *Server) Drain(ctx context.Context) error {
	return s.drain(ctx, &packet.Disconnect{ReasonCode: reasonShuttingDown})
}

// Handover is Drain for a member that stops serving while the broker goes
// on elsewhere (replication: leadership moved to another member). 5.0
// clients get DISCONNECT 0x9C Use another server with serverReference as
// the Server Reference (0x8B Server shutting down when it is "").
func (s *Server) Handover(ctx context.Context, serverReference string) error {
	d := &packet.Disconnect{ReasonCode: reasonShuttingDown}
	if serverReference != "" {
		d.ReasonCode, d.Properties.ServerReference = packet.UseAnotherServer, &serverReference
	}
	return s.drain(ctx, d)
}

// Quiesce prepares a handover: the server stops taking new work and lets
// the work in flight finish, so that a store that stops accepting commits
// afterwards (a cluster member handing its leadership over) fails none of
// them and every acknowledgement owed goes out. Read loops dispatch no
// further packet (a packet read meanwhile is dropped when the connection
// closes: the client holds no acknowledgement for it and sends it again
// to the next server), writers start no new delivery but still send
// acknowledgements, new sessions are refused (Server unavailable), the
// expiry sweeper stops. It returns once every commit submitted before it
// has finished, or with ctx's error. A quiesced server does not resume:
// Handover or Drain follows.
func (s *Server) Quiesce(ctx context.Context) error {
	if !s.started.Load() {
		return ErrNotStarted
	}
	s.quiesced.Store(true)
	s.sweep.stop()
	conns := s.connList()
	// A dispatch or a delivery that began before the flag was set ends
	// (its commits submitted) before these are free; any later one sees
	// the flag. A QoS 2 delivery that an inline write staged for its commit
	// (writer.staged) began before too: the writer goroutine commits it,
	// and Quiesce waits for that.
	for _, c := range conns {
		c.dispatchMu.Lock()
		c.dispatchMu.Unlock() //nolint:staticcheck // an empty critical section: waits for the holder
		if err := c.waitStaged(ctx); err != nil {
			return fmt.Errorf("engine: quiesce: %w", err)
		}
	}
	if err := s.com.waitIdle(ctx); err != nil {
		return fmt.Errorf("engine: quiesce: commits still in flight: %w", err)
	}
	return nil
}

// connList is a snapshot of the open connections, taken under s.mu.
func (s *Server) connList() []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	conns := make([]*conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	return conns
}

func (s *Server) drain(ctx context.Context, d *packet.Disconnect) error {
	if !s.started.Load() {
		s.draining.Store(true)
		return ErrNotStarted
	}
	if s.draining.Swap(true) {
		return s.waitConns(ctx)
	}
	conns := s.connList()
	for _, c := range conns {
		c.kickWith(d)
	}
	err := s.waitConns(ctx)
	s.sweep.stop()
	s.com.stop()
	return err
}

func (s *Server) waitConns(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.connWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		for c := range s.conns {
			c.closeNow()
		}
		s.mu.Unlock()
		return fmt.Errorf("engine: drain: %w", ctx.Err())
	}
}

// ApplyConfig applies the hot fields of cfg (queue limits and policies,
// which every existing session takes at once, expiry caps, limits,
// authentication, log level) and returns the changed fields that
// need a restart to take effect (the config.Diff entries of class
// Restart). When the users file cannot be loaded
// or the ACL compiled, it applies nothing and returns the error.
func (s *Server) ApplyConfig(cfg *config.Config) ([]config.Change, error) {
	a, err := s.buildAuth(cfg)
	if err != nil {
		// Nothing of cfg is applied: a configuration is in force whole or
		// not at all, so its generation is never reported for a broker that
		// kept the previous users and ACLs.
		return nil, err
	}
	old := s.config()
	var restart []config.Change
	for _, c := range config.Diff(old, cfg) {
		if c.Class == config.Restart {
			restart = append(restart, c)
		}
	}
	s.authz.Store(a)
	s.sessEnv.Store(s.newEnv())
	s.cfg.Store(cfg.Clone())
	s.gen.Store(cfg.ConfigGeneration)
	s.applyPolicies(cfg)
	return restart, nil
}

// ConfigGeneration returns the configGeneration of the applied config.
func (s *Server) ConfigGeneration() int64 { return s.gen.Load() }
