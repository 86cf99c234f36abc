package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/logcheck"
	"github.com/bollard-io/bollard/test/poll"
	"github.com/bollard-io/bollard/test/testenv"
)

// testVersion is stamped into the binary the tests run.
const testVersion = "v0.0.0-bintest"

// bollardBin is the broker binary built by TestMain.
var bollardBin string

// TestMain builds cmd/bollard once (with -race when the tests run with
// -race, so the broker's own races fail the tests too) and runs the
// binary-level tests against it.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bollard-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bollardBin = filepath.Join(dir, "bollard")
	args := []string{"build", "-o", bollardBin, "-ldflags", "-X main.version=" + testVersion}
	if raceBuild {
		args = append(args, "-race")
	}
	cmd := exec.Command("go", append(args, ".")...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintf(os.Stderr, "building cmd/bollard: %v\n", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// requireTool returns the path of an external client program. Without
// the external build tag (`make test-fast`) the test skips; with it, a
// missing client fails the test under CI (CI=true: the test command
// installs it) and skips it elsewhere.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	requireExternal(t)
	p, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s is not installed (apt-get install mosquitto-clients mosquitto python3-paho-mqtt)", name)
	}
	return p
}

// skipAbuseIfShort skips an abuse test under -short (`make test-fast`):
// each floods or starves the broker for tens of seconds. `make test` runs
// them.
func skipAbuseIfShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("abuse test: loads the broker for tens of seconds; runs without -short (make test)")
	}
}

// requireExternal skips the test unless the build has the external tag
// (`make test` sets it; `make test-fast` does not).
func requireExternal(t *testing.T) {
	t.Helper()
	if !testenv.External {
		t.Skip("runs an external program: build with -tags external (make test)")
	}
}

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// logLines collects a process's JSON log lines and lets tests wait for
// one.
type logLines struct {
	mu    sync.Mutex
	lines []map[string]any
	raw   bytes.Buffer
	added chan struct{} // signalled on every new line
}

func newLogLines() *logLines { return &logLines{added: make(chan struct{}, 1)} }

func (l *logLines) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var m map[string]any
		if json.Unmarshal(sc.Bytes(), &m) != nil {
			m = map[string]any{"msg": sc.Text(), "unparsed": true}
		}
		l.mu.Lock()
		l.lines = append(l.lines, m)
		l.raw.Write(sc.Bytes())
		l.raw.WriteByte('\n')
		l.mu.Unlock()
		select {
		case l.added <- struct{}{}:
		default:
		}
	}
}

// find returns the first line whose msg is msg.
func (l *logLines) find(msg string) (map[string]any, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, m := range l.lines {
		if m["msg"] == msg {
			return m, i
		}
	}
	return nil, -1
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.raw.String()
}

// broker is one running bollard process.
type broker struct {
	t       *testing.T
	cmd     *exec.Cmd
	logs    *logLines
	exited  chan struct{}
	exitErr error
	mqtt    string // bound MQTT address
	admin   string // bound admin address
	ws      string // bound WebSocket address, if enabled
	tls     string // bound TLS address, if enabled
}

// startBollard runs the binary with args and waits until it logs "ready".
// Unless args say otherwise, it listens on free loopback ports.
func startBollard(t *testing.T, args ...string) *broker {
	t.Helper()
	b := launch(t, withDefaultPorts(args)...)
	b.waitReady(60 * time.Second)
	return b
}

func withDefaultPorts(args []string) []string {
	joined := strings.Join(args, " ")
	if !strings.Contains(joined, "--listen") && !strings.Contains(joined, "--config") {
		args = append(args, "--listen", "127.0.0.1:0")
	}
	if !strings.Contains(joined, "--admin-listen") {
		args = append(args, "--admin-listen", "127.0.0.1:0")
	}
	return args
}

// launch starts the binary without waiting for anything.
func launch(t *testing.T, args ...string) *broker {
	t.Helper()
	return launchEnv(t, nil, args...)
}

// launchEnv is launch with env added to the test's environment.
func launchEnv(t *testing.T, env []string, args ...string) *broker {
	t.Helper()
	b := &broker{t: t, logs: newLogLines(), exited: make(chan struct{})}
	b.cmd = exec.Command(bollardBin, args...)
	b.cmd.Dir = t.TempDir()
	if env != nil {
		b.cmd.Env = append(os.Environ(), env...)
	}
	stderr, err := b.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		b.logs.consume(stderr)
		b.exitErr = b.cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(func() {
		b.kill()
		if line, key := logcheck.RepeatedKey(b.logs.String()); key != "" {
			t.Errorf("bollard logged %q twice in one record (a log shipper keeps one): %s", key, line)
		}
		if t.Failed() {
			t.Logf("bollard %v log:\n%s", args, b.logs)
		}
	})
	return b
}

// waitReady waits for the "ready" log line and reads the bound addresses.
func (b *broker) waitReady(d time.Duration) {
	b.t.Helper()
	line := b.waitLog("ready", d)
	b.admin, _ = line["admin"].(string)
	ls, _ := line["listeners"].(map[string]any)
	b.mqtt, _ = ls["mqtt"].(string)
	b.ws, _ = ls["websocket"].(string)
	b.tls, _ = ls["tls"].(string)
}

// waitLog waits for a log line with the given msg.
func (b *broker) waitLog(msg string, d time.Duration) map[string]any {
	b.t.Helper()
	m, exited := b.findLog(msg, d)
	switch {
	case m != nil:
		return m
	case exited:
		b.t.Fatalf("bollard exited (%v) before logging %q", b.exitErr, msg)
	default:
		b.t.Fatalf("bollard did not log %q within %s", msg, d)
	}
	return nil
}

// waitLogOrExit is waitLog that returns nil when the process exits first.
func (b *broker) waitLogOrExit(msg string, d time.Duration) map[string]any {
	m, _ := b.findLog(msg, d)
	return m
}

// findLog waits up to d for a log line with msg. It returns nil when the
// process exited without logging it (exited) or the time ran out.
func (b *broker) findLog(msg string, d time.Duration) (m map[string]any, exited bool) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		if m, _ := b.logs.find(msg); m != nil {
			return m, false
		}
		select {
		case <-b.logs.added:
		case <-b.exited:
			m, _ := b.logs.find(msg)
			return m, m == nil
		case <-deadline.C:
			return nil, false
		}
	}
}

// signal sends sig and waits for the process to exit, returning its exit
// code.
func (b *broker) signal(sig syscall.Signal, d time.Duration) int {
	b.t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		b.t.Fatalf("signal %v: %v", sig, err)
	}
	return b.wait(d)
}

// wait waits for the process to exit and returns its exit code (-1 when
// killed by a signal).
func (b *broker) wait(d time.Duration) int {
	b.t.Helper()
	select {
	case <-b.exited:
	case <-time.After(d):
		b.t.Fatalf("bollard did not exit within %s", d)
	}
	return b.cmd.ProcessState.ExitCode()
}

// kill stops the process with SIGKILL if it still runs.
func (b *broker) kill() {
	select {
	case <-b.exited:
		return
	default:
	}
	_ = b.cmd.Process.Kill() // it may have exited meanwhile
	<-b.exited
}

// get fetches an admin path and returns the status code and body.
func (b *broker) get(path string) (int, string) {
	b.t.Helper()
	return httpGet(b.t, "http://"+b.admin+path)
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err.Error()
	}
	return resp.StatusCode, string(body)
}

// runBollard runs the binary to completion and returns its exit code,
// stdout and stderr.
func runBollard(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bollardBin, args...)
	cmd.Dir = t.TempDir()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// A non-zero exit is what many callers expect: they check the code.
	if err := cmd.Run(); err != nil && ctx.Err() != nil {
		t.Fatalf("bollard %v did not exit within 30s: %v", args, err)
	} else if err != nil && cmd.ProcessState == nil {
		t.Fatalf("bollard %v: %v", args, err)
	}
	return cmd.ProcessState.ExitCode(), stdout.String(), stderr.String()
}

// waitUntil polls cond every 10ms until it holds, failing the test when d
// passes first.
func waitUntil(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Wait(t, d, 10*time.Millisecond, what, cond)
}
