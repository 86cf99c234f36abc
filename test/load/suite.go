package load

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// Sizes scale the scenarios.
type Sizes struct {
	Name              string
	PubSubMessages    int // 1 -> 1 runs
	PubSubWindow      int
	FanoutSubscribers int
	FanoutMessages    int
	FanoutWindow      int
	Windows           []int // the publisher windows of the window scenarios
	WindowMessages    int   // published per window scenario at window 1, times the window, at most WindowMaxMessages
	WindowMaxMessages int
	Repeat            int // runs per broker of all but the restart scenario, alternating; the best counts
	IngestSessions    int
	IngestPublishers  int
	IngestMessages    int
	DrainMessages     int
	RestartSessions   int
	RestartPerSession int // queued messages per session
	StormClients      int // persistent clients of the connect storm
	StormConcurrency  int // of them connecting at a time
	Timeout           time.Duration
}

// FullSizes are the sizes, for `make bench` (about 3 minutes on
// two shared cores).
func FullSizes() Sizes {
	return Sizes{
		Name: "full", PubSubMessages: 100_000, PubSubWindow: 500,
		FanoutSubscribers: 100, FanoutMessages: 5_000, FanoutWindow: 50, Repeat: 3,
		Windows: []int{1, 20, 100}, WindowMessages: 4_000, WindowMaxMessages: 20_000,
		IngestSessions: 100, IngestPublishers: 16, IngestMessages: 20_000,
		DrainMessages: 100_000, RestartSessions: 10_000, RestartPerSession: 100,
		StormClients: 10_000, StormConcurrency: 100,
		Timeout: 5 * time.Minute,
	}
}

// ShortSizes are a tenth of FullSizes, for a quick look.
func ShortSizes() Sizes {
	return Sizes{
		Name: "short", PubSubMessages: 10_000, PubSubWindow: 500,
		FanoutSubscribers: 100, FanoutMessages: 500, FanoutWindow: 50, Repeat: 1,
		Windows: []int{1, 20, 100}, WindowMessages: 400, WindowMaxMessages: 2_000,
		IngestSessions: 100, IngestPublishers: 16, IngestMessages: 2_000,
		DrainMessages: 10_000, RestartSessions: 1_000, RestartPerSession: 100,
		StormClients: 2_000, StormConcurrency: 100,
		Timeout: 2 * time.Minute,
	}
}

// TinySizes keep the smoke test of `go test ./...` under a few seconds.
func TinySizes() Sizes {
	return Sizes{
		Name: "tiny", PubSubMessages: 300, PubSubWindow: 50,
		FanoutSubscribers: 3, FanoutMessages: 50, FanoutWindow: 10, Repeat: 1,
		Windows: []int{1, 20}, WindowMessages: 20, WindowMaxMessages: 100,
		IngestSessions: 4, IngestPublishers: 2, IngestMessages: 100,
		DrainMessages: 300, RestartSessions: 20, RestartPerSession: 5,
		StormClients: 50, StormConcurrency: 10,
		Timeout: time.Minute,
	}
}

// SizesByName returns full, short or tiny.
func SizesByName(name string) (Sizes, error) {
	switch name {
	case "full":
		return FullSizes(), nil
	case "short":
		return ShortSizes(), nil
	case "tiny":
		return TinySizes(), nil
	}
	return Sizes{}, fmt.Errorf("load: unknown size %q (full, short, tiny)", name)
}

// Factory makes a fresh broker target in an empty directory.
type Factory struct {
	Name string
	New  func(dir string) (Target, error)
}

// BollardFactory runs a bollard binary in sync durability.
func BollardFactory(binary string, maxInflight int) Factory {
	return Factory{Name: "bollard", New: func(dir string) (Target, error) {
		return NewBollard(BollardOptions{Binary: binary, Dir: dir, Durability: "sync", MaxInflight: maxInflight})
	}}
}

// BaselineName is the factory name of BaselineFactory, the report's
// baseline column.
const BaselineName = "baseline"

// BaselineFactory runs another bollard binary (an earlier build) as the
// baseline, alternating with the others, for before/after ratios.
func BaselineFactory(binary string, maxInflight int) Factory {
	f := BollardFactory(binary, maxInflight)
	f.Name = BaselineName
	return f
}

// InProcessFactory runs the Bollard engine in this process (Pebble, sync).
func InProcessFactory(maxInflight int) Factory {
	return Factory{Name: "bollard", New: func(dir string) (Target, error) {
		return NewInProcess(filepath.Join(dir, "data"), "sync", maxInflight)
	}}
}

// MosquittoFactory runs Debian's mosquitto.
func MosquittoFactory(binary string, maxInflight int) Factory {
	return Factory{Name: "mosquitto", New: func(dir string) (Target, error) {
		return NewMosquitto(MosquittoOptions{Binary: binary, Dir: dir, MaxInflight: maxInflight})
	}}
}

// FindMosquitto returns the mosquitto binary, or "" when not installed.
func FindMosquitto() string {
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	return ""
}

// BuildBollard builds cmd/bollard from this module into dir.
func BuildBollard(ctx context.Context, dir string) (string, error) {
	out := filepath.Join(dir, "bollard")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-o", out, "github.com/bollard-io/bollard/cmd/bollard")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("load: go build cmd/bollard: %w\n%s", err, b)
	}
	return out, nil
}

// Suite runs every scenario against every factory's broker.
type Suite struct {
	Sizes     Sizes
	Factories []Factory
	// Only, when set, selects scenarios by name.
	Only func(name string) bool
	// Logf reports progress (may be nil).
	Logf func(format string, args ...any)
}

func (s *Suite) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// Run runs the scenarios in order and returns the report; the error joins
// every scenario failure (the report still holds what was measured).
func (s *Suite) Run(ctx context.Context) (*Report, error) {
	rep := &Report{}
	var errs error
	for _, sc := range scenarios(s.Sizes) {
		if s.Only != nil && !s.Only(sc.name) {
			continue
		}
		byBroker, err := s.runScenario(ctx, sc)
		errs = errors.Join(errs, err)
		for _, m := range sc.metrics {
			row := m.row
			row.Scenario = sc.name
			row.Bollard = byBroker["bollard"][m.key]
			row.Mosquitto = byBroker["mosquitto"][m.key]
			row.Baseline = byBroker[BaselineName][m.key]
			rep.Add(row)
		}
		if err != nil {
			rep.Rows[len(rep.Rows)-1].Errors = append(rep.Rows[len(rep.Rows)-1].Errors, err.Error())
		}
	}
	return rep, errs
}

// runScenario runs sc on each broker Repeat times, alternating brokers so
// that noise from the shared machine spreads over both, and keeps each
// broker's best run.
func (s *Suite) runScenario(ctx context.Context, sc scenario) (map[string]measurement, error) {
	best := map[string]measurement{}
	var errs error
	for range max(1, sc.repeat) {
		for _, f := range s.Factories {
			m, err := s.runOnce(ctx, sc, f)
			if err != nil {
				errs = errors.Join(errs, fmt.Errorf("%s on %s: %w", sc.name, f.Name, err))
			}
			if m != nil && (best[f.Name] == nil || m[sc.primary] > best[f.Name][sc.primary]) {
				best[f.Name] = m
			}
		}
	}
	return best, errs
}

func (s *Suite) runOnce(ctx context.Context, sc scenario, f Factory) (measurement, error) {
	dir, err := os.MkdirTemp("", "bollard-load-"+f.Name+"-")
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer os.RemoveAll(dir)
	ctx, cancel := context.WithTimeout(ctx, s.Sizes.Timeout)
	defer cancel()
	t, err := startTarget(ctx, f, dir)
	if err != nil {
		return nil, err
	}
	begin := time.Now()
	m, err := sc.run(ctx, t, s.Sizes)
	stopCtx, stopCancel := context.WithTimeout(context.Background(), stopTimeout)
	defer stopCancel()
	err = errors.Join(err, t.Stop(stopCtx))
	s.logf("%-40s %-9s %6.1fs %s", sc.name, f.Name, time.Since(begin).Seconds(), m)
	return m, err
}

// startAttempts bounds the starts of a broker whose port was taken: the
// ports are free when chosen, but another process on the shared machine
// may bind one before the broker does.
const startAttempts = 3

// startTarget makes and starts a broker of f in dir, on new ports when
// the chosen ones were taken meanwhile.
func startTarget(ctx context.Context, f Factory, dir string) (Target, error) {
	var err error
	for range startAttempts {
		var t Target
		if t, err = f.New(dir); err != nil {
			return nil, err
		}
		if _, err = t.Start(ctx); err == nil {
			return t, nil
		}
		if !strings.Contains(err.Error(), "address already in use") {
			return nil, err
		}
	}
	return nil, err
}
