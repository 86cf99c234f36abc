package load

import (
	"bufio"
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stopTimeout bounds a graceful stop before the process is killed.
const stopTimeout = 60 * time.Second

// process runs one broker binary with a generated config file, restartable
// on the same data directory. Its output goes to a log file in dir.
type process struct {
	name   string
	dir    string
	argv   func() []string // the command line, after config was written
	ready  func(ctx context.Context) bool
	heap   func(ctx context.Context) (int64, error)                      // nil: not reported
	fsync  func(ctx context.Context) (seconds, count float64, err error) // nil: not reported
	fsyncs bool

	cmd    *exec.Cmd
	exited chan struct{}
	err    error // Wait's result, valid once exited is closed
	addr   string
}

func (p *process) Name() string { return p.name }
func (p *process) Addr() string { return p.addr }
func (p *process) Fsyncs() bool { return p.fsyncs }

// FsyncTotals returns the broker's fsync count and their total time so
// far, when it reports them.
func (p *process) FsyncTotals(ctx context.Context) (seconds, count float64, err error) {
	if p.fsync == nil {
		return 0, 0, errors.ErrUnsupported
	}
	return p.fsync(ctx)
}

// HeapInUse returns the broker's Go heap in use, when it reports it.
func (p *process) HeapInUse(ctx context.Context) (int64, error) {
	if p.heap == nil {
		return 0, errors.ErrUnsupported
	}
	return p.heap(ctx)
}

func (p *process) PID() int {
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Start launches the process and polls its readiness.
func (p *process) Start(ctx context.Context) (time.Duration, error) {
	if p.cmd != nil {
		return 0, fmt.Errorf("load: %s already running", p.name)
	}
	logf, err := os.OpenFile(filepath.Join(p.dir, p.name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return 0, fmt.Errorf("load: %w", err)
	}
	defer logf.Close() // the child holds its own descriptor
	argv := p.argv()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr, cmd.Dir = logf, logf, p.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	begin := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("load: start %s: %w", p.name, err)
	}
	var cg *cpuCgroup
	if cores := cpuLimit(); cores > 0 {
		if cg, err = limitCPU(cmd.Process.Pid, cores); err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return 0, err
		}
	}
	p.cmd, p.exited = cmd, make(chan struct{})
	go func() {
		p.err = cmd.Wait()
		_ = cg.remove() // empty now
		close(p.exited)
	}()
	if err := pollUntil(ctx, p.exited, p.ready); err != nil {
		_ = p.kill() // already failing; the log tells why
		return 0, fmt.Errorf("%s: %w (log: %s)", p.name, err, p.logTail())
	}
	return time.Since(begin), nil
}

// Stop sends SIGTERM and waits; after stopTimeout it kills the process.
func (p *process) Stop(ctx context.Context) error {
	if p.cmd == nil {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("load: stop %s: %w", p.name, err)
	}
	t := time.NewTimer(stopTimeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-ctx.Done():
		_ = p.kill()
		return fmt.Errorf("load: stop %s: %w", p.name, ctx.Err())
	case <-t.C:
		_ = p.kill()
		return fmt.Errorf("load: %s did not stop within %s", p.name, stopTimeout)
	}
	err := p.err
	p.cmd = nil
	if err != nil {
		return fmt.Errorf("load: %s exited: %w (log: %s)", p.name, err, p.logTail())
	}
	return nil
}

func (p *process) kill() error {
	if p.cmd == nil {
		return nil
	}
	err := p.cmd.Process.Kill()
	<-p.exited
	p.cmd = nil
	return err
}

// logTail returns the end of the process log, for error messages.
func (p *process) logTail() string {
	b, err := os.ReadFile(filepath.Join(p.dir, p.name+".log"))
	if err != nil {
		return err.Error()
	}
	if len(b) > 800 {
		b = b[len(b)-800:]
	}
	return strings.TrimSpace(string(b))
}

// BollardOptions configure a bollard process.
type BollardOptions struct {
	Binary      string // built from this checkout
	Dir         string // data directory, config and log go here
	Durability  string // sync, interval or none
	MaxInflight int
	// MaxQueuedMessages is every session's queue limit (DropOldest); 0:
	// 10,000,000, so that the scenarios never drop.
	MaxQueuedMessages int
}

// NewBollard returns a bollard process target with queue limits raised so
// that the scenarios never drop, and readiness from the admin /readyz.
func NewBollard(o BollardOptions) (Target, error) {
	mqtt, err := freePort()
	if err != nil {
		return nil, err
	}
	admin, err := freePort()
	if err != nil {
		return nil, err
	}
	cfg := filepath.Join(o.Dir, "bollard.yaml")
	if err := os.WriteFile(cfg, []byte(bollardConfig(o, mqtt, admin)), 0o644); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	client := &http.Client{Timeout: time.Second}
	p := &process{
		name: "bollard", dir: o.Dir, addr: mqtt, fsyncs: o.Durability == "sync",
		argv: func() []string { return []string{o.Binary, "--config", cfg} },
		ready: func(ctx context.Context) bool {
			return httpOK(ctx, client, "http://"+admin+"/readyz")
		},
		heap: func(ctx context.Context) (int64, error) {
			return promGauge(ctx, client, "http://"+admin+"/metrics", "go_memstats_heap_inuse_bytes")
		},
		fsync: func(ctx context.Context) (float64, float64, error) {
			const name = "bollard_store_fsync_duration_seconds"
			v, err := promSamples(ctx, client, "http://"+admin+"/metrics", name+"_sum", name+"_count")
			if err != nil {
				return 0, 0, err
			}
			return v[0], v[1], nil
		},
	}
	return p, nil
}

// bollardConfig is the broker's configuration for a run, its limits high
// enough for every scenario (the restart scenario's 10,000 sessions and its
// publishers are anonymous: one principal for sessions.maxSessionsPerPrincipal).
func bollardConfig(o BollardOptions, mqtt, admin string) string {
	return fmt.Sprintf(`listeners:
  mqtt:
    address: %s
admin:
  address: %s
dataDir: %s
durability:
  mode: %s
queues:
  maxQueuedMessages: %d
  maxQueuedBytes: 4294967296
  overflowPolicy: DropOldest
sessions:
  maxSessions: 1000000
  maxSessionsPerPrincipal: 1000000
limits:
  maxConnections: 100000
  maxInflight: %d
  memoryLimit: %d
logLevel: warn
`, mqtt, admin, filepath.Join(o.Dir, "data"), o.Durability, cmp.Or(o.MaxQueuedMessages, 10_000_000), o.MaxInflight, memoryLimit())
}

// memoryLimit is the broker's limits.memoryLimit for the run, in bytes,
// from LOAD_BOLLARD_MEMORY_LIMIT (unset or 0, the default, leaves the Go
// runtime's own setting; the operator sets 80% of the container's memory
// limit). TestMain refuses a value ParseMemoryLimit does not read, so a
// typo cannot silently run every broker without a limit.
func memoryLimit() int64 {
	n, _ := ParseMemoryLimit(os.Getenv("LOAD_BOLLARD_MEMORY_LIMIT"))
	return n
}

// ParseMemoryLimit reads a memory size: bytes ("1073741824"), or a whole
// number of KiB, MiB or GiB ("1GiB", also "1Gi" as Kubernetes writes it).
// Empty is 0.
func ParseMemoryLimit(s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	num, mult := s, int64(1)
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}} {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("memory size %q: want bytes or a whole number of KiB, MiB or GiB (e.g. 1GiB)", s)
	}
	return n * mult, nil
}

func httpOK(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// promGauge reads one unlabelled sample from a Prometheus text endpoint.
func promGauge(ctx context.Context, c *http.Client, url, name string) (int64, error) {
	v, err := promSamples(ctx, c, url, name)
	if err != nil {
		return 0, err
	}
	return int64(v[0]), nil
}

// promSamples reads unlabelled samples from a Prometheus text endpoint, in
// the order of names.
func promSamples(ctx context.Context, c *http.Client, url string, names ...string) ([]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	defer resp.Body.Close()
	out, found := make([]float64, len(names)), 0
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		for i, name := range names {
			v, ok := strings.CutPrefix(sc.Text(), name+" ")
			if !ok {
				continue
			}
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				return nil, fmt.Errorf("load: %s: %w", name, err)
			}
			out[i] = f
			found++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("load: reading %s: %w", url, err)
	}
	if found < len(names) {
		return nil, fmt.Errorf("load: %v not all found in %s", names, url)
	}
	return out, nil
}

// MosquittoOptions configure a mosquitto process.
type MosquittoOptions struct {
	Binary      string // usually /usr/sbin/mosquitto
	Dir         string
	MaxInflight int
}

// NewMosquitto returns a mosquitto target with persistence on (it saves
// its database on shutdown and every autosave interval, never fsyncing
// per message), queues large enough never to drop, and the same inflight
// window as Bollard. Readiness is a successful CONNECT.
func NewMosquitto(o MosquittoOptions) (Target, error) {
	addr, err := freePort()
	if err != nil {
		return nil, err
	}
	_, port, _ := strings.Cut(addr, ":")
	cfg := filepath.Join(o.Dir, "mosquitto.conf")
	if err := os.WriteFile(cfg, []byte(mosquittoConfig(o, port)), 0o644); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	p := &process{
		name: "mosquitto", dir: o.Dir, addr: addr,
		argv:  func() []string { return []string{o.Binary, "-c", cfg} },
		ready: func(ctx context.Context) bool { return mqttReady(ctx, addr) },
	}
	return p, nil
}

func mosquittoConfig(o MosquittoOptions, port string) string {
	return fmt.Sprintf(`# generated by test/load
user root
listener %s 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
persistence_file mosquitto.db
max_queued_messages 10000000
max_queued_bytes 0
max_inflight_messages %d
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
`, port, o.Dir, o.MaxInflight)
}
