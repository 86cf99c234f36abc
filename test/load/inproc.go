package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/host"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// inproc runs the Bollard engine inside this process, wired like
// cmd/bollard, so tests need no binary and CPU profiles of a scenario
// (go test -cpuprofile) include the broker.
type inproc struct {
	cfg    *config.Config
	srv    *engine.Server // while running
	addr   string
	cancel context.CancelFunc
	done   chan error
}

// NewInProcess returns a target running the Bollard engine in process on
// 127.0.0.1 ports chosen at Start. durability "none" uses the memory store
// (nothing survives Stop); "sync" and "interval" use Pebble in dir.
func NewInProcess(dir, durability string, maxInflight int) (Target, error) {
	cfg := config.Default()
	cfg.Listeners.MQTT.Address = "127.0.0.1:0"
	cfg.Admin.Address = "127.0.0.1:0"
	cfg.Durability.Mode = durability
	cfg.DataDir = dir
	if durability == config.DurabilityNone {
		cfg.DataDir = ""
	}
	cfg.Queues.MaxQueuedMessages, cfg.Queues.MaxQueuedBytes = 10_000_000, 4<<30
	// The restart scenario's sessions and its publishers are all anonymous:
	// one principal.
	cfg.Sessions.MaxSessions, cfg.Sessions.MaxSessionsPerPrincipal = 1_000_000, 1_000_000
	cfg.Limits.MaxConnections = 100_000
	cfg.Limits.MaxInflight = uint16(maxInflight)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("load: in-process config: %w", err)
	}
	return &inproc{cfg: cfg}, nil
}

func (b *inproc) Name() string { return "bollard" }
func (b *inproc) Addr() string { return b.addr }
func (b *inproc) PID() int     { return 0 }
func (b *inproc) Fsyncs() bool { return b.cfg.Durability.Mode == config.DurabilitySync }

// FsyncTotals returns the engine's fsync count and their total time so far.
func (b *inproc) FsyncTotals(context.Context) (seconds, count float64, err error) {
	if b.srv == nil {
		return 0, 0, errors.New("load: in-process broker not running")
	}
	h := b.srv.Stats().Fsync
	return h.Sum, float64(h.Count), nil
}

func (b *inproc) openStore(log *slog.Logger) (store.Store, error) {
	opts := pebblestore.Options{Durability: pebblestore.Sync, Logger: log}
	switch b.cfg.Durability.Mode {
	case config.DurabilityNone:
		return memstore.New(), nil
	case config.DurabilityInterval:
		opts.Durability, opts.Interval = pebblestore.Interval, b.cfg.Durability.Interval.D()
	}
	return pebblestore.Open(b.cfg.DataDir, opts)
}

// Start opens the store, runs the engine and waits for readiness.
func (b *inproc) Start(ctx context.Context) (time.Duration, error) {
	if b.cancel != nil {
		return 0, errors.New("load: in-process broker already running")
	}
	begin := time.Now()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st, err := b.openStore(log)
	if err != nil {
		return 0, fmt.Errorf("load: open store: %w", err)
	}
	srv, err := engine.New(b.cfg, st, engine.WithLogger(log))
	if err != nil {
		return 0, errors.Join(fmt.Errorf("load: %w", err), st.Close())
	}
	b.srv = srv
	runner := host.NewRunner(srv, host.RunOptions{Config: b.cfg, Logger: log, Store: st})
	runCtx, cancel := context.WithCancel(context.Background())
	b.cancel, b.done = cancel, make(chan error, 1)
	go func() { b.done <- runner.Run(runCtx) }()
	if err := b.awaitReady(ctx, runner); err != nil {
		return 0, errors.Join(err, b.Stop(ctx))
	}
	b.addr = runner.ListenerAddrs()[host.ListenerMQTT]
	if b.addr == "" {
		return 0, errors.Join(fmt.Errorf("load: no mqtt listener in %v", runner.ListenerAddrs()), b.Stop(ctx))
	}
	return time.Since(begin), nil
}

func (b *inproc) awaitReady(ctx context.Context, r *host.Runner) error {
	ctx, cancel := context.WithTimeout(ctx, startTimeout)
	defer cancel()
	select {
	case <-r.ReadyC():
		return nil
	case err := <-b.done:
		b.done <- err // Stop reads it again
		return fmt.Errorf("load: in-process broker stopped before ready: %w", err)
	case <-ctx.Done():
		return fmt.Errorf("load: in-process broker not ready: %w", ctx.Err())
	}
}

// Stop drains the engine and closes the store.
func (b *inproc) Stop(ctx context.Context) error {
	if b.cancel == nil {
		return nil
	}
	b.cancel()
	b.cancel = nil
	select {
	case err := <-b.done:
		if err != nil {
			return fmt.Errorf("load: in-process broker: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("load: stopping in-process broker: %w", ctx.Err())
	}
}
