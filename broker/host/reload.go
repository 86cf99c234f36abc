package host

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/config"
)

// DefaultReloadInterval is how often the config file is polled.
const DefaultReloadInterval = time.Second

// Reconfigurable applies a new configuration's hot fields. *engine.Server
// implements it. ApplyConfig applies all of cfg or, returning an error,
// nothing.
type Reconfigurable interface {
	ApplyConfig(cfg *config.Config) ([]config.Change, error)
}

// ReloadStatus is the config reloader's state, reported on /v1/status and
// /metrics.
type ReloadStatus struct {
	// ConfigFile is the watched file.
	ConfigFile string
	// AppliedGeneration is the configGeneration of the last applied file.
	AppliedGeneration int64
	// PendingRestartFields are the restart fields whose value in the file
	// differs from the one the process runs with.
	PendingRestartFields []string
	// LastError is the error of the last attempt, "" when it succeeded.
	LastError string
	// RefusedGeneration is the configGeneration of the newest file version
	// the broker refused (invalid, or users/ACLs it could not load), while
	// no later version has been applied; 0 otherwise (also when the
	// refused file had no readable configGeneration). RefusedError says
	// why. A refused version is never reported as applied.
	RefusedGeneration int64
	RefusedError      string
	// LastReloadTime is when a changed file was last applied.
	LastReloadTime time.Time
	// Reloads and Failures count applied and rejected file versions.
	Reloads, Failures int64
}

// ReloaderOptions configure a Reloader.
type ReloaderOptions struct {
	// Interval between polls; 0 means DefaultReloadInterval.
	Interval time.Duration
	// Overrides re-applies the command-line flags to every loaded file, so
	// that flags keep overriding the file after a reload.
	Overrides func(*config.Config)
	// LevelVar, when set, follows the logLevel of each applied config.
	LevelVar *slog.LevelVar
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Reloader watches the config file and applies changes to a running
// broker. It polls the content hash of the file (following symlinks), which
// sees both in-place edits and the `..data` symlink swap of Kubernetes
// ConfigMap volumes, without depending on inotify semantics.
type Reloader struct {
	path   string
	target Reconfigurable
	opts   ReloaderOptions
	log    *slog.Logger
	// running is the configuration the process started with: its restart
	// fields are the ones in effect until the next start.
	running *config.Config

	mu       sync.Mutex
	current  *config.Config // last applied
	lastHash [sha256.Size]byte
	hashSet  bool
	// usersHash is the content hash of the users file the broker last
	// loaded: a Kubernetes Secret update changes that file, not this one.
	usersHash [sha256.Size]byte
	usersSet  bool
	status    ReloadStatus

	kick chan struct{}
}

// NewReloader watches path for a broker started with running (already
// applied to target, overrides included).
func NewReloader(path string, running *config.Config, target Reconfigurable, o ReloaderOptions) *Reloader {
	if o.Interval <= 0 {
		o.Interval = DefaultReloadInterval
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Reloader{
		path: path, target: target, opts: o, log: o.Logger,
		running: running.Clone(), current: running.Clone(),
		status: ReloadStatus{ConfigFile: path, AppliedGeneration: running.ConfigGeneration},
		kick:   make(chan struct{}, 1),
		// The broker loaded the users file when it started.
		usersHash: usersFileHash(running.Auth.UsersFile), usersSet: true,
	}
}

// Run polls until ctx is done, and at once whenever Trigger is called.
func (r *Reloader) Run(ctx context.Context) {
	t := time.NewTicker(r.opts.Interval)
	defer t.Stop()
	for {
		if err := r.Check(); err != nil {
			// fail logged it at error level, once per new problem.
			r.log.Debug("config check failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.kick:
		}
	}
}

// Trigger asks Run for an immediate check (for example on SIGHUP).
func (r *Reloader) Trigger() {
	select {
	case r.kick <- struct{}{}:
	default: // a check is already due
	}
}

// Check reads the file once and applies it if its content changed. It
// returns the error of this attempt, which is also kept in the status; a
// failed attempt leaves the previous configuration in place.
func (r *Reloader) Check() error {
	b, err := os.ReadFile(r.path)
	if err != nil {
		return r.fail(fmt.Errorf("host: reload: %w", err))
	}
	sum := sha256.Sum256(b)
	r.mu.Lock()
	users := usersFileHash(r.current.Auth.UsersFile)
	unchanged := r.hashSet && sum == r.lastHash && r.usersSet && users == r.usersHash
	r.mu.Unlock()
	if unchanged {
		return nil
	}
	cfg, err := r.parse(b)
	if err != nil {
		gen, _ := config.PeekGeneration(b)
		return r.refuse(err, gen, sum, usersFileHash(r.Current().Auth.UsersFile))
	}
	newUsers := usersFileHash(cfg.Auth.UsersFile)
	if err := r.apply(cfg, sum, newUsers); err != nil {
		return r.refuse(err, cfg.ConfigGeneration, sum, newUsers)
	}
	return nil
}

// parse decodes and validates one version of the file, with the flag
// overrides applied.
func (r *Reloader) parse(b []byte) (*config.Config, error) {
	cfg, err := config.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("host: reload %s: %w", r.path, err)
	}
	if r.opts.Overrides != nil {
		r.opts.Overrides(cfg)
		if err := cfg.Validate(); err != nil {
			return nil, fmt.Errorf("host: reload %s: %w", r.path, err)
		}
	}
	return cfg, nil
}

// fail records an attempt that could not read the file: it is retried on
// every poll but logged only when the error changes.
func (r *Reloader) fail(err error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err.Error() != r.status.LastError {
		r.status.Failures++
		r.log.Error("config reload failed; keeping the previous configuration", "file", r.path, "err", err)
	}
	r.status.LastError = err.Error()
	r.hashSet = false // re-read whatever comes back
	return err
}

// refuse records a file version the broker refused: it is reported once
// (its hash and the users file's are remembered, so it is tried again
// only when either changes) and stays reported as refused until a later
// version is applied.
func (r *Reloader) refuse(err error, gen int64, sum, users [sha256.Size]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status.Failures++
	r.log.Error("config refused; keeping the previous configuration", "file", r.path,
		"configGeneration", gen, "appliedGeneration", r.status.AppliedGeneration, "err", err)
	r.status.LastError = err.Error()
	r.status.RefusedGeneration, r.status.RefusedError = gen, err.Error()
	r.lastHash, r.hashSet = sum, true
	r.usersHash, r.usersSet = users, true
	return err
}

// apply hands a valid new configuration to the broker; an error means the
// broker refused it and nothing was applied.
func (r *Reloader) apply(cfg *config.Config, sum, users [sha256.Size]byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	usersChanged := r.usersSet && users != r.usersHash
	changes := config.Diff(r.current, cfg)
	if usersChanged {
		changes = append(changes, config.Change{Field: "auth.usersFile (content)", Class: config.Hot})
	}
	if len(changes) == 0 {
		// Same settings written differently, or the file we started with.
		r.lastHash, r.hashSet = sum, true
		r.usersHash, r.usersSet = users, true
		r.status.LastError, r.status.RefusedGeneration, r.status.RefusedError = "", 0, ""
		return nil
	}
	restartNow, err := r.target.ApplyConfig(cfg)
	if err != nil {
		return err
	}
	r.lastHash, r.hashSet = sum, true
	r.usersHash, r.usersSet = users, true
	r.status.LastError, r.status.RefusedGeneration, r.status.RefusedError = "", 0, ""
	r.current = cfg
	if r.opts.LevelVar != nil {
		r.opts.LevelVar.Set(ParseLogLevel(cfg.LogLevel))
	}
	applyMemoryLimit(cfg.Limits.MemoryLimit)
	applyProcsMode(cfg.Procs)
	r.status.AppliedGeneration = cfg.ConfigGeneration
	r.status.PendingRestartFields = pendingRestart(r.running, cfg)
	r.status.LastReloadTime = time.Now()
	r.status.Reloads++
	r.log.Info("config reloaded", "file", r.path, "configGeneration", cfg.ConfigGeneration,
		"changed", changeFields(changes), "pendingRestart", r.status.PendingRestartFields,
		"restartFieldsInThisChange", changeFields(restartNow))
	return nil
}

// usersFileHash is the content hash of the users file at path; the zero
// hash when there is none or it cannot be read (the broker then keeps the
// users it has and logs why when it next applies a config).
func usersFileHash(path string) [sha256.Size]byte {
	if path == "" {
		return [sha256.Size]byte{}
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return [sha256.Size]byte{}
	}
	return sha256.Sum256(b)
}

// pendingRestart lists the restart fields that differ between the running
// process and the file. It compares with the config the process started
// with, not the previous file, so that a later hot-only change does not
// hide an earlier restart change.
func pendingRestart(running, file *config.Config) []string {
	var out []string
	for _, c := range config.Diff(running, file) {
		if c.Class == config.Restart {
			out = append(out, c.Field)
		}
	}
	// limits.memoryLimit is hot for the runtime, but sizes the store's
	// memtables at start: a change that moves them waits for a restart.
	// That is this process's state, not the field's class: config.Diff and
	// RestartHash keep it hot, since under the operator the limit follows
	// the pod's resources, whose change rolls the pod by itself.
	if running.Limits.StoreMemTableBytes() != file.Limits.StoreMemTableBytes() {
		out = append(out, "limits.memoryLimit")
	}
	return out
}

func changeFields(changes []config.Change) []string {
	out := make([]string, len(changes))
	for i, c := range changes {
		out[i] = c.Field
	}
	return out
}

// Status returns a copy of the reloader's state.
func (r *Reloader) Status() ReloadStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.PendingRestartFields = append([]string(nil), s.PendingRestartFields...)
	return s
}

// Current returns the last applied configuration (a copy).
func (r *Reloader) Current() *config.Config {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.current.Clone()
}

// ParseLogLevel maps a config log level (debug, info, warn, error) to a
// slog.Level; anything else is info.
func ParseLogLevel(s string) slog.Level {
	switch s {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	default:
		return slog.LevelInfo
	}
}
