package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
)

// drainGrace is how long past its timeout a Drain may run before the host
// stops waiting and closes the store anyway (commits then fail, so nothing
// unacknowledged is lost; acknowledged messages are already durable).
const drainGrace = 5 * time.Second

// adminShutdownTimeout bounds the wait for admin requests in progress.
const adminShutdownTimeout = 2 * time.Second

// Engine is the broker engine as the Runner hosts it. *engine.Server
// implements it.
type Engine interface {
	ConnHandler
	ConnRefuser
	AdminBackend
	Reconfigurable
	Start(ctx context.Context) error
	Drain(ctx context.Context) error
}

// RunOptions configure a Runner.
type RunOptions struct {
	// Config is the validated configuration, command-line flags applied.
	Config *config.Config
	// ConfigFile is watched for hot reload; "" disables reloading.
	ConfigFile string
	// Overrides re-applies the command-line flags to a reloaded file.
	Overrides func(*config.Config)
	// LevelVar follows the logLevel of reloaded configs; may be nil.
	LevelVar *slog.LevelVar
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Version is reported on /v1/status and /metrics.
	Version string
	// Store is closed (flushed) last, after the drain.
	Store io.Closer
	// ReloadInterval is the config poll period; 0 means the default.
	ReloadInterval time.Duration
	// Role decides whether the engine serves the clients the listeners
	// accept; nil means Single (always).
	Role Role
	// Cluster is the replication side of a cluster member, for the admin
	// endpoint; nil for a single node.
	Cluster ClusterAdmin
	// AdaptProcs lets the Runner set the process's Ps (GOMAXPROCS) from
	// its load while it serves, as the config's procs says (procs.go):
	// for the process that runs one broker, not for tests that run many.
	AdaptProcs bool
}

// Runner sequences a broker process around an Engine: admin endpoint,
// listeners, recovery, readiness, hot reload, drain and shutdown.
//
// Startup: bind the admin endpoint (so /healthz answers during recovery),
// bind the listeners (a busy port fails before a long recovery), Start the
// engine (recovery), then accept and report ready. Shutdown: readiness
// false, stop accepting, Drain within drainTimeout, close the store.
type Runner struct {
	e       Engine
	o       RunOptions
	log     *slog.Logger
	started time.Time

	accepting atomic.Bool
	draining  atomic.Bool
	drainOnce sync.Once
	drainDone chan struct{}
	// drainAsked is closed by the first StartDrain: Run then shuts down.
	drainAsked chan struct{}
	readyCh    chan struct{}

	// mu guards listeners and admin, set by Run and read by accessors.
	mu        sync.Mutex
	listeners *ListenerSet
	admin     *AdminServer
	auth      *AdminAuth
	reloader  *Reloader
	// stopProcs ends the Ps controller (AdaptProcs); nil when none runs.
	stopProcs func()
}

// NewRunner prepares a Runner; Run starts it.
func NewRunner(e Engine, o RunOptions) *Runner {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Role == nil {
		o.Role = Single{}
	}
	r := &Runner{
		e: e, o: o, log: o.Logger, started: time.Now(),
		drainDone:  make(chan struct{}),
		drainAsked: make(chan struct{}),
		readyCh:    make(chan struct{}),
	}
	if o.ConfigFile != "" {
		r.reloader = NewReloader(o.ConfigFile, o.Config, e, ReloaderOptions{
			Interval: o.ReloadInterval, Overrides: o.Overrides, LevelVar: o.LevelVar, Logger: o.Logger,
		})
	}
	return r
}

// Run starts the broker and blocks until ctx is done (the caller cancels it
// on SIGTERM/SIGINT) or a drain is requested (POST /v1/drain), then shuts
// down gracefully: a drain is a shutdown step, never a state the process
// idles in with its listeners closed. It returns nil after a
// clean shutdown and an error when startup failed or the store could not
// be closed; the store is closed in every case.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.start(ctx); err != nil {
		r.abort()
		if ctx.Err() != nil {
			r.log.Info("stopped during startup", "err", err)
			return nil // asked to stop while recovering: not a failure
		}
		return err
	}
	rctx, stopReload := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	if r.reloader != nil {
		wg.Go(func() { r.reloader.Run(rctx) })
	}
	select {
	case <-ctx.Done():
		r.log.Info("shutdown requested: readiness false, draining", "drainTimeout", r.drainTimeout().String())
	case <-r.drainAsked:
		r.log.Info("drain requested: readiness false, draining, then stopping", "drainTimeout", r.drainTimeout().String())
	}
	err := r.shutdown()
	stopReload()
	wg.Wait()
	return err
}

// start binds, recovers and starts accepting.
func (r *Runner) start(ctx context.Context) error {
	applyMemoryLimit(r.o.Config.Limits.MemoryLimit)
	if addr := r.o.Config.Admin.Address; addr != "" {
		auth, err := NewAdminAuth(r.o.Config.Admin.TokenFile, r.o.Config.AdminOnLoopback(), r.log)
		if err != nil {
			return err
		}
		r.logAdminAuth(auth)
		r.mu.Lock()
		r.auth = auth
		r.mu.Unlock()
		a, err := ListenAdmin(addr, r.AdminHandler(), r.log)
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.admin = a
		r.mu.Unlock()
	}
	ls, err := Listen(r.o.Config, roleGate{role: r.o.Role, e: r.e}, r.log)
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.listeners = ls
	r.mu.Unlock()
	t0 := time.Now()
	restoreGC := raiseGCForRecovery()
	err = r.e.Start(ctx)
	if err != nil {
		restoreGC()
		return fmt.Errorf("host: recovery: %w", err)
	}
	took := time.Since(t0)
	r.log.Info("recovered state from the store", "took", took.String())
	if took >= bigRecovery {
		// See bigRecovery. The collection runs at the recovery's GC
		// percent, restored after it: put back first, the percent would
		// put the large heap far past its goal at once, and the
		// collection's mark assists would stall the first clients (~1 s
		// for a million sessions).
		go func() { debug.FreeOSMemory(); restoreGC() }()
	} else {
		restoreGC()
	}
	applyProcsMode(r.o.Config.Procs)
	if r.o.AdaptProcs {
		pctx, stop := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); runProcs(pctx, r.log) }()
		r.mu.Lock()
		r.stopProcs = func() { stop(); <-done }
		r.mu.Unlock()
	}
	ls.Serve()
	r.accepting.Store(true)
	close(r.readyCh)
	dataDir := r.o.Config.DataDir
	if r.o.Config.Durability.Mode == config.DurabilityNone {
		dataDir = "" // nothing is written to disk
	}
	r.log.Info("ready", "version", r.o.Version, "listeners", ls.Addrs(),
		"admin", r.AdminAddr(), "durability", r.o.Config.Durability.Mode, "dataDir", dataDir,
		"configFile", r.o.ConfigFile, "configGeneration", r.e.ConfigGeneration())
	return nil
}

// abort releases what a failed start bound or opened.
func (r *Runner) abort() {
	// Nothing to drain: no connection was accepted. If a drain was
	// requested meanwhile, let it finish before the store closes.
	r.drainOnce.Do(func() {
		r.draining.Store(true)
		close(r.drainDone)
	})
	<-r.drainDone
	r.closeListeners()
	r.shutdownAdmin()
	r.logErr("closing the store", r.closeStore())
}

// shutdown drains the engine and closes the store, then the admin
// endpoint (which answers 503 on /readyz until then).
func (r *Runner) shutdown() error {
	r.endProcs() // the drain and the store's close run on every P
	r.StartDrain()
	<-r.drainDone
	err := r.closeStore()
	if err == nil {
		r.log.Info("store closed")
	}
	r.shutdownAdmin()
	if err != nil {
		return err
	}
	r.log.Info("stopped")
	return nil
}

// endProcs stops the Ps controller, which gives the runtime all its Ps
// back.
func (r *Runner) endProcs() {
	r.mu.Lock()
	stop := r.stopProcs
	r.stopProcs = nil
	r.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// StartDrain begins a drain and returns at once: readiness turns false,
// the listeners stop accepting, and the engine disconnects its clients
// and finishes its commits within the drain timeout. Only the first call
// has an effect.
func (r *Runner) StartDrain() {
	r.drainOnce.Do(func() {
		r.draining.Store(true)
		close(r.drainAsked)
		go func() {
			defer close(r.drainDone)
			r.drain()
		}()
	})
}

// drain stops accepting and waits for the engine's Drain, bounded.
func (r *Runner) drain() {
	r.closeListeners()
	timeout := r.drainTimeout()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.e.Drain(ctx) }()
	t0 := time.Now()
	select {
	case err := <-done:
		if err != nil {
			r.log.Warn("drain did not finish in time; closing anyway", "err", err, "drainTimeout", timeout.String())
			return
		}
		r.log.Info("drained", "took", time.Since(t0).String())
	case <-time.After(timeout + drainGrace):
		r.log.Error("drain ignored its deadline; closing the store anyway", "drainTimeout", timeout.String())
	}
}

func (r *Runner) closeStore() error {
	if r.o.Store == nil {
		return nil
	}
	if err := r.o.Store.Close(); err != nil {
		return fmt.Errorf("host: closing the store: %w", err)
	}
	return nil
}

func (r *Runner) closeListeners() {
	r.mu.Lock()
	ls := r.listeners
	r.mu.Unlock()
	if ls != nil {
		r.logErr("closing listeners", ls.Close())
	}
}

func (r *Runner) shutdownAdmin() {
	r.mu.Lock()
	a := r.admin
	r.mu.Unlock()
	if a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminShutdownTimeout)
	defer cancel()
	r.logErr("stopping the admin endpoint", a.Shutdown(ctx))
}

func (r *Runner) logErr(what string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		r.log.Error(what, "err", err)
	}
}

// drainTimeout is the drainTimeout of the applied configuration (it is a
// hot field).
func (r *Runner) drainTimeout() time.Duration {
	if r.reloader != nil {
		return r.reloader.Current().DrainTimeout.D()
	}
	return r.o.Config.DrainTimeout.D()
}

// Ready reports whether the broker is recovered, accepting, serving
// clients (its Role) and not draining: what /readyz answers.
func (r *Runner) Ready() bool {
	serving, _ := r.o.Role.Serving()
	return serving && r.accepting.Load() && !r.draining.Load() && r.e.Ready()
}

// Draining reports whether a drain started.
func (r *Runner) Draining() bool { return r.draining.Load() }

// ReadyC is closed once the broker first became ready.
func (r *Runner) ReadyC() <-chan struct{} { return r.readyCh }

// TriggerReload checks the config file now (for example on SIGHUP).
func (r *Runner) TriggerReload() {
	if r.reloader != nil {
		r.reloader.Trigger()
	}
}

// ListenerAddrs returns the bound client listener addresses by kind
// (valid once ReadyC is closed).
func (r *Runner) ListenerAddrs() map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.listeners == nil {
		return nil
	}
	return r.listeners.Addrs()
}

// AdminAddr returns the bound admin address, or "" when disabled.
func (r *Runner) AdminAddr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.admin == nil {
		return ""
	}
	return r.admin.Addr().String()
}

// AdminHandler is the admin endpoint wired to this runner.
func (r *Runner) AdminHandler() http.Handler {
	c := AdminConfig{
		Backend:  r.e,
		Version:  r.o.Version,
		Started:  r.started,
		Ready:    r.Ready,
		Drain:    r.StartDrain,
		Draining: r.Draining,
		Role:     r.o.Role,
		Cluster:  r.o.Cluster,
		Log:      r.log,
	}
	r.mu.Lock()
	c.Auth = r.auth
	r.mu.Unlock()
	if r.reloader != nil {
		c.Reload = r.reloader.Status
	}
	return NewAdminHandler(c)
}

// logAdminAuth says at start who may use the admin API.
func (r *Runner) logAdminAuth(a *AdminAuth) {
	switch a.Mode() {
	case "token":
		r.log.Info("admin API requires a bearer token", "tokenFile", r.o.Config.Admin.TokenFile)
	case "loopback-open":
		r.log.Info("admin API open without a token: the admin endpoint is on loopback and no admin.tokenFile is set")
	default:
		r.log.Warn("admin API closed: the admin endpoint is not on loopback and no admin.tokenFile is set; "+
			"/v1/* answers 403 (/healthz, /readyz and /metrics stay open)", "admin", r.o.Config.Admin.Address)
	}
}

// The host drives the real engine through Engine.
var _ Engine = (*engine.Server)(nil)
