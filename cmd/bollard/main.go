// Command bollard is the Bollard MQTT broker.
//
//	bollard [--config FILE] [--listen ADDR] [--admin-listen ADDR] [--admin-token-file FILE]
//	        [--data-dir DIR] [--durability sync|interval|none] [--allow-anonymous]
//	        [--log-level LEVEL]
//	bollard version
//
// Flags override the config file. Logs are JSON lines on stderr. SIGTERM
// or SIGINT drains and stops the broker (exit 0), and so does an
// authenticated POST /v1/drain on the admin endpoint; SIGHUP re-reads the
// config file at once. This package only parses flags and wires the
// broker's parts together: the engine (broker/engine) under the host
// (broker/host), which sequences startup and shutdown.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/host"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // the broker could not start or stop cleanly
	exitUsage   = 2 // bad flags or configuration
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "version" {
		fmt.Fprintf(stdout, "bollard %s\n", version)
		return exitOK
	}
	if len(args) > 0 && args[0] == "cluster" {
		return runCluster(args[1:], stdout, stderr) // recover.go
	}
	fl, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if err != nil {
		fmt.Fprintf(stderr, "bollard: %v\n", err)
		return exitUsage
	}
	cfg, err := fl.load()
	if err != nil {
		fmt.Fprintf(stderr, "bollard: %v\n", err)
		return exitUsage
	}
	level := new(slog.LevelVar)
	level.Set(host.ParseLogLevel(cfg.LogLevel))
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(log)
	return serve(cfg, fl, level, log)
}

// serve opens the store, builds the server and runs it until a signal.
func serve(cfg *config.Config, fl *flags, level *slog.LevelVar, log *slog.Logger) int {
	log.Info("starting bollard", "version", version, "configFile", fl.configFile,
		"dataDir", dataDirForLog(cfg), "durability", cfg.Durability.Mode, "anonymous", cfg.AnonymousAllowed(),
		"memTableBytes", cfg.Limits.StoreMemTableBytes())
	if cfg.Cluster.Enabled() {
		return serveMember(cfg, fl, level, log)
	}
	restoreGC := host.PrepareRecovery(cfg.Limits.MemoryLimit)
	st, err := openStore(cfg, log)
	restoreGC()
	if err != nil {
		log.Error("cannot open the store; not starting. The store is never reset automatically: "+
			"fix the cause, or move the data directory aside to start empty",
			"dataDir", dataDirForLog(cfg), "err", err)
		return exitFailure
	}
	srv, err := engine.New(cfg, st, engine.WithLogger(log))
	if err != nil {
		log.Error("cannot create the server", "err", err)
		if cerr := st.Close(); cerr != nil {
			log.Error("closing the store", "err", cerr)
		}
		return exitFailure
	}
	return runHost(srv, host.RunOptions{
		AdaptProcs: true,
		Config:     cfg, ConfigFile: fl.configFile, Overrides: fl.apply, LevelVar: level,
		Logger: log, Version: version, Store: st,
	}, nil)
}

// runHost hosts e until SIGTERM or SIGINT (a second one kills the process the
// default way), reloading the config on SIGHUP. When stopped is closed
// (the process cannot go on: a cluster member whose store stopped
// following the log), it drains and returns exitFailure.
func runHost(e host.Engine, o host.RunOptions, stopped <-chan struct{}) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	runner := host.NewRunner(e, o)
	failed := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			stop()
		case <-stopped:
			close(failed)
			runner.StartDrain()
		}
	}()
	stopHUP := onSIGHUP(runner.TriggerReload)
	defer stopHUP()
	if err := runner.Run(ctx); err != nil {
		o.Logger.Error("bollard stopped with an error", "err", err)
		return exitFailure
	}
	select {
	case <-failed:
		return exitFailure
	default:
		return exitOK
	}
}

// onSIGHUP calls fn on every SIGHUP until the returned func is called.
func onSIGHUP(fn func()) func() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-ch:
				fn()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(ch); close(done) }
}

// openStore opens the durable store for sync and interval durability and
// a memory store for none. A store that cannot be opened is an error:
// never reset, never replaced by an empty one.
func openStore(cfg *config.Config, log *slog.Logger) (store.Store, error) {
	if cfg.Durability.Mode == config.DurabilityNone {
		return memstore.New(), nil
	}
	if dir := filepath.Join(cfg.DataDir, "cluster"); cluster.HasClusterState(dir) {
		return nil, fmt.Errorf("bollard: %s holds a cluster member's state (the store was adopted by a cluster, or a member ran here): "+
			"start this data directory as that member (cluster.memberID and cluster.members, or --cluster-member-id and --cluster-members), "+
			"or move %s aside to start a single node from what else is in %s", dir, dir, cfg.DataDir)
	}
	opts := pebblestore.Options{Durability: pebblestore.Sync, Logger: log, LargestWrite: int64(cfg.Limits.MaxPacketSize),
		MemTableSize: cfg.Limits.StoreMemTableBytes()}
	if cfg.Durability.Mode == config.DurabilityInterval {
		opts.Durability, opts.Interval = pebblestore.Interval, cfg.Durability.Interval.D()
	}
	st, err := pebblestore.Open(cfg.DataDir, opts)
	if err != nil {
		return nil, fmt.Errorf("bollard: open store in %s: %w", cfg.DataDir, err)
	}
	return st, nil
}

func dataDirForLog(cfg *config.Config) string {
	if cfg.Durability.Mode == config.DurabilityNone {
		return "(none: durability is none, state is kept in memory)"
	}
	if abs, err := filepath.Abs(cfg.DataDir); err == nil {
		return abs
	}
	return cfg.DataDir
}

// flags are the command-line flags; the ones set explicitly override the
// config file.
type flags struct {
	configFile     string
	listen         string
	adminListen    string
	adminTokenFile string
	dataDir        string
	durability     string
	allowAnonymous bool
	logLevel       string
	clusterMember  string
	clusterBind    string
	clusterMembers string
	clusterSecret  string
	clusterBoot    bool
	clusterDial    string
	set            map[string]bool
}

var (
	durabilityModes = []string{config.DurabilitySync, config.DurabilityInterval, config.DurabilityNone}
	logLevels       = []string{"debug", "info", "warn", "error"}
)

// parseFlags parses and checks args. The flag package accepts both -flag
// and --flag.
func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{set: map[string]bool{}}
	fs := flag.NewFlagSet("bollard", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.configFile, "config", "", "YAML config `file` (watched: hot fields reload without a restart)")
	fs.StringVar(&f.listen, "listen", "", "MQTT TCP listener `address` (default 127.0.0.1:1883)")
	fs.StringVar(&f.adminListen, "admin-listen", "", "admin HTTP `address` (default 127.0.0.1:8080; \"\" disables)")
	fs.StringVar(&f.adminTokenFile, "admin-token-file", "", "`file` holding the bearer token required by the admin API (/v1/*); "+
		"without one, /v1/* is served only on a loopback admin address")
	fs.StringVar(&f.dataDir, "data-dir", "", "data `directory` of the durable store (default ./bollard-data)")
	fs.StringVar(&f.durability, "durability", "", "durability `mode`: sync (default), interval or none")
	fs.BoolVar(&f.allowAnonymous, "allow-anonymous", false, "admit clients without a username")
	fs.StringVar(&f.logLevel, "log-level", "", "log `level`: debug, info (default), warn or error")
	fs.StringVar(&f.clusterMember, "cluster-member-id", "", "this member's `id` in a replicated cluster (cluster.memberID; none: a single node)")
	fs.StringVar(&f.clusterBind, "cluster-bind", "", "replication listen `address` (cluster.bind)")
	fs.StringVar(&f.clusterMembers, "cluster-members", "", "cluster `members` as id=raftAddress[=clientAddress],... (cluster.members)")
	fs.StringVar(&f.clusterSecret, "cluster-secret-file", "", "`file` holding the replication secret, 32 bytes or more (cluster.secretFile)")
	fs.BoolVar(&f.clusterBoot, "cluster-bootstrap", false, "form the cluster from the members when this member has no state (cluster.bootstrap)")
	fs.StringVar(&f.clusterDial, "cluster-dial-addresses", "", "where to dial members whose raftAddress is not reachable as such, as id=address,... (cluster.dialAddresses)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: bollard [flags]\n       bollard version\n\nflags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (the only command is \"version\")", fs.Arg(0))
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, f.check()
}

// check validates flag values, naming the flag.
func (f *flags) check() error {
	var errs []error
	if f.set["durability"] && !slices.Contains(durabilityModes, f.durability) {
		errs = append(errs, fmt.Errorf("--durability: must be one of %s, got %q", strings.Join(durabilityModes, ", "), f.durability))
	}
	if f.set["log-level"] && !slices.Contains(logLevels, f.logLevel) {
		errs = append(errs, fmt.Errorf("--log-level: must be one of %s, got %q", strings.Join(logLevels, ", "), f.logLevel))
	}
	if f.set["listen"] {
		errs = append(errs, checkAddr("--listen", f.listen, false))
	}
	if f.set["admin-listen"] {
		errs = append(errs, checkAddr("--admin-listen", f.adminListen, true))
	}
	if f.set["admin-token-file"] && f.adminTokenFile == "" {
		errs = append(errs, errors.New("--admin-token-file: must not be empty"))
	}
	if f.set["data-dir"] && f.dataDir == "" {
		errs = append(errs, errors.New("--data-dir: must not be empty"))
	}
	if f.set["cluster-members"] {
		if _, err := parseMembers(f.clusterMembers); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-members: %w", err))
		}
	}
	if f.set["cluster-dial-addresses"] {
		if _, err := parseDialAddresses(f.clusterDial); err != nil {
			errs = append(errs, fmt.Errorf("--cluster-dial-addresses: %w", err))
		}
	}
	return errors.Join(errs...)
}

func checkAddr(name, addr string, emptyOK bool) error {
	if addr == "" && emptyOK {
		return nil
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
		return fmt.Errorf("%s: must be host:port (for example 127.0.0.1:1883), got %q", name, addr)
	}
	return nil
}

// load reads the config file (or the defaults), applies the flags and
// validates the result.
func (f *flags) load() (*config.Config, error) {
	cfg := config.Default()
	if f.configFile != "" {
		c, err := config.Load(f.configFile)
		if err != nil {
			return nil, err
		}
		cfg = c
	}
	f.apply(cfg)
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// apply overrides cfg with the flags set on the command line. It runs at
// start and again on every reload of the config file.
func (f *flags) apply(cfg *config.Config) {
	if f.set["listen"] {
		cfg.Listeners.MQTT.Address = f.listen
	}
	if f.set["admin-listen"] {
		cfg.Admin.Address = f.adminListen
	}
	if f.set["admin-token-file"] {
		cfg.Admin.TokenFile = f.adminTokenFile
	}
	if f.set["data-dir"] {
		cfg.DataDir = f.dataDir
	}
	if f.set["durability"] {
		cfg.Durability.Mode = f.durability
	}
	if f.set["allow-anonymous"] {
		v := f.allowAnonymous
		cfg.Auth.AllowAnonymous = &v
	}
	if f.set["log-level"] {
		cfg.LogLevel = f.logLevel
	}
	if f.set["cluster-member-id"] {
		cfg.Cluster.MemberID = f.clusterMember
	}
	if f.set["cluster-bind"] {
		cfg.Cluster.Bind = f.clusterBind
	}
	if f.set["cluster-members"] {
		cfg.Cluster.Members, _ = parseMembers(f.clusterMembers) // checked by check
	}
	if f.set["cluster-secret-file"] {
		cfg.Cluster.SecretFile = f.clusterSecret
	}
	if f.set["cluster-bootstrap"] {
		cfg.Cluster.Bootstrap = f.clusterBoot
	}
	if f.set["cluster-dial-addresses"] {
		cfg.Cluster.DialAddresses, _ = parseDialAddresses(f.clusterDial) // checked by check
	}
}

// maxDialAddresses bounds the entries of --cluster-dial-addresses before
// they reach the config's own check (at most as many as members).
const maxDialAddresses = 64

// parseDialAddresses reads "id=address,..."; an empty value is an empty
// map. The IDs and addresses are checked with the rest of the config.
func parseDialAddresses(v string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	items := strings.Split(v, ",")
	if len(items) > maxDialAddresses {
		return nil, fmt.Errorf("at most %d entries, got %d", maxDialAddresses, len(items))
	}
	for _, item := range items {
		id, addr, ok := strings.Cut(strings.TrimSpace(item), "=")
		if !ok || id == "" || addr == "" {
			return nil, fmt.Errorf("want id=address, got %q", item)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("member %q is listed twice", id)
		}
		out[id] = addr
	}
	return out, nil
}

// parseMembers reads "id=raftAddress[=clientAddress],...". The addresses
// are checked with the rest of the config.
func parseMembers(v string) ([]config.ClusterMember, error) {
	var out []config.ClusterMember
	for _, item := range strings.Split(v, ",") {
		parts := strings.Split(strings.TrimSpace(item), "=")
		if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
			return nil, fmt.Errorf("want id=raftAddress[=clientAddress], got %q", item)
		}
		m := config.ClusterMember{ID: parts[0], RaftAddress: parts[1]}
		if len(parts) == 3 {
			m.ClientAddress = parts[2]
		}
		out = append(out, m)
	}
	return out, nil
}
