package host

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
)

// fakeStore is the io.Closer the runner closes last.
type fakeStore struct {
	closed   atomic.Int64
	closeErr error
	// drainedFirst records whether the engine had drained when Close ran.
	eng          *fakeEngine
	drainedFirst atomic.Bool
}

func (s *fakeStore) Close() error {
	s.closed.Add(1)
	if s.eng != nil {
		s.drainedFirst.Store(s.eng.drains.Load() > 0)
	}
	return s.closeErr
}

// runnerFixture runs a Runner over a fake engine on loopback ports.
type runnerFixture struct {
	eng    *fakeEngine
	st     *fakeStore
	r      *Runner
	cancel context.CancelFunc
	done   chan error
}

func loopbackConfig() *config.Config {
	c := config.Default()
	c.Listeners.MQTT.Address = "127.0.0.1:0"
	c.Admin.Address = "127.0.0.1:0"
	c.DrainTimeout = config.Duration(5 * time.Second)
	return c
}

// startRunner runs a Runner over eng; opts change its RunOptions.
func startRunner(t *testing.T, cfg *config.Config, eng Engine, opts ...func(*RunOptions)) *runnerFixture {
	t.Helper()
	f := &runnerFixture{st: &fakeStore{}, done: make(chan error, 1)}
	if fe, ok := eng.(*fakeEngine); ok {
		f.eng, f.st.eng = fe, fe
	}
	o := RunOptions{Config: cfg, Logger: testLogger(t), Version: "test", Store: f.st}
	for _, opt := range opts {
		opt(&o)
	}
	f.r = NewRunner(eng, o)
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-f.done:
			if err != nil {
				t.Logf("Run = %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return")
		}
	})
	return f
}

func (f *runnerFixture) stop(t *testing.T) error {
	t.Helper()
	f.cancel()
	select {
	case err := <-f.done:
		f.done <- err // for Cleanup
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
		return nil
	}
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (f *runnerFixture) adminURL(t *testing.T, path string) string {
	t.Helper()
	eventually(t, 5*time.Second, "admin endpoint bound", func() bool { return f.r.AdminAddr() != "" })
	return "http://" + f.r.AdminAddr() + path
}

func TestRunnerReadinessFollowsRecovery(t *testing.T) {
	eng := newFakeEngine()
	eng.startBlock = make(chan struct{})
	f := startRunner(t, loopbackConfig(), eng)
	readyz := f.adminURL(t, "/readyz")
	if code := httpStatus(t, f.adminURL(t, "/healthz")); code != 200 {
		t.Errorf("/healthz during recovery = %d", code)
	}
	if code := httpStatus(t, readyz); code != 503 {
		t.Errorf("/readyz during recovery = %d", code)
	}
	close(eng.startBlock)
	<-f.r.ReadyC()
	eventually(t, 5*time.Second, "/readyz 200", func() bool { return httpStatus(t, readyz) == 200 })
	c, err := net.Dial("tcp", f.r.ListenerAddrs()[ListenerMQTT])
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	eventually(t, 5*time.Second, "connection handed to the engine", func() bool { return eng.served.Load() == 1 })

	if err := f.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	if eng.drains.Load() != 1 || f.st.closed.Load() != 1 || !f.st.drainedFirst.Load() {
		t.Errorf("drains %d, store closes %d, drained before close %v", eng.drains.Load(), f.st.closed.Load(), f.st.drainedFirst.Load())
	}
	if code := httpStatus(t, readyz); code != 0 {
		t.Errorf("admin endpoint still answers after Run: %d", code)
	}
}

func TestRunnerDrainEndpoint(t *testing.T) {
	eng := newFakeEngine()
	eng.drainBlock = make(chan struct{})
	f := startRunner(t, loopbackConfig(), eng)
	<-f.r.ReadyC()
	mqtt := f.r.ListenerAddrs()[ListenerMQTT]
	resp, err := http.Post(f.adminURL(t, "/v1/drain"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /v1/drain = %d", resp.StatusCode)
	}
	if code := httpStatus(t, f.adminURL(t, "/readyz")); code != 503 {
		t.Errorf("/readyz after drain = %d", code)
	}
	eventually(t, 5*time.Second, "listener closed", func() bool {
		c, err := net.DialTimeout("tcp", mqtt, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if f.st.closed.Load() != 0 {
		t.Error("the store closed before the drain finished")
	}
	if code := httpStatus(t, f.adminURL(t, "/healthz")); code != 200 {
		t.Errorf("/healthz during the drain = %d", code)
	}
	// A drain is a shutdown step: once it finishes, Run returns by itself
	// (the process exits and is restarted), never idling with its
	// listeners closed and /healthz 200.
	admin := f.adminURL(t, "/healthz")
	close(eng.drainBlock)
	select {
	case err := <-f.done:
		f.done <- err // for Cleanup
		if err != nil {
			t.Fatalf("Run after a drain = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the drain finished")
	}
	if eng.drains.Load() != 1 || f.st.closed.Load() != 1 {
		t.Errorf("drains %d, store closes %d", eng.drains.Load(), f.st.closed.Load())
	}
	if code := httpStatus(t, admin); code != 0 {
		t.Errorf("admin endpoint still answers after the drain: %d", code)
	}
}

// TestRunnerAdminTokenFile: a runner with admin.tokenFile guards /v1/*; an
// unusable token file stops the start; a non-loopback admin address
// without a token closes /v1/*.
func TestRunnerAdminTokenFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "token")
	writeToken(t, path, testAdminToken)
	cfg := loopbackConfig()
	cfg.Admin.TokenFile = path
	f := startRunner(t, cfg, newFakeEngine())
	<-f.r.ReadyC()
	if code := httpStatus(t, f.adminURL(t, "/v1/status")); code != 401 {
		t.Errorf("/v1/status without token = %d", code)
	}
	req, err := http.NewRequest("GET", f.adminURL(t, "/v1/status"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("/v1/status with token = %d", resp.StatusCode)
	}

	bad := loopbackConfig()
	bad.Admin.TokenFile = filepath.Join(t.TempDir(), "missing")
	st := &fakeStore{eng: newFakeEngine()}
	r := NewRunner(st.eng, RunOptions{Config: bad, Logger: testLogger(t), Store: st})
	if err := r.Run(context.Background()); !errors.Is(err, ErrAdminToken) {
		t.Errorf("Run with a missing token file = %v", err)
	}
	if st.closed.Load() != 1 {
		t.Errorf("store closes after a failed start = %d", st.closed.Load())
	}

	wide := loopbackConfig()
	wide.Admin.Address = "0.0.0.0:0"
	g := startRunner(t, wide, newFakeEngine())
	<-g.r.ReadyC()
	_, port, _ := net.SplitHostPort(g.r.AdminAddr())
	base := "http://127.0.0.1:" + port
	if code := httpStatus(t, base+"/v1/status"); code != 403 {
		t.Errorf("non-loopback admin without token: /v1/status = %d", code)
	}
	if code := httpStatus(t, base+"/healthz"); code != 200 {
		t.Errorf("non-loopback admin without token: /healthz = %d", code)
	}
}

func TestRunnerDrainTimeout(t *testing.T) {
	eng := newFakeEngine()
	eng.drainBlock = make(chan struct{}) // never released: Drain waits for its ctx
	cfg := loopbackConfig()
	cfg.DrainTimeout = config.Duration(50 * time.Millisecond)
	f := startRunner(t, cfg, eng)
	<-f.r.ReadyC()
	t0 := time.Now()
	if err := f.stop(t); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("shutdown took %s with a 50ms drain timeout", d)
	}
	if f.st.closed.Load() != 1 {
		t.Error("store not closed after a drain timeout")
	}
}

func TestRunnerStartFailure(t *testing.T) {
	eng := newFakeEngine()
	eng.startErr = errors.New("store: corrupt data: torn record")
	st := &fakeStore{}
	r := NewRunner(eng, RunOptions{Config: loopbackConfig(), Logger: testLogger(t), Store: st})
	err := r.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "host: recovery") || !strings.Contains(err.Error(), "torn record") {
		t.Fatalf("Run = %v", err)
	}
	if st.closed.Load() != 1 {
		t.Error("store not closed after a failed start")
	}
	if c, err := net.DialTimeout("tcp", r.AdminAddr(), time.Second); err == nil {
		c.Close()
		t.Error("admin port still bound after a failed start")
	}
}

func TestRunnerBusyPort(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg := loopbackConfig()
	cfg.Listeners.MQTT.Address = busy.Addr().String()
	eng := newFakeEngine()
	r := NewRunner(eng, RunOptions{Config: cfg, Logger: testLogger(t), Store: &fakeStore{}})
	if err := r.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "listener mqtt") {
		t.Fatalf("Run = %v", err)
	}
	if eng.started.Load() {
		t.Error("recovery ran although a port was busy")
	}
}

func TestRunnerStoreCloseError(t *testing.T) {
	eng := newFakeEngine()
	f := startRunner(t, loopbackConfig(), eng)
	f.st.closeErr = errors.New("disk full")
	<-f.r.ReadyC()
	if err := f.stop(t); err == nil || !strings.Contains(err.Error(), "closing the store") {
		t.Errorf("Run = %v", err)
	}
}

func TestRunnerStopDuringRecovery(t *testing.T) {
	eng := newFakeEngine()
	eng.startBlock = make(chan struct{}) // recovery never finishes by itself
	f := startRunner(t, loopbackConfig(), eng)
	f.adminURL(t, "/healthz")
	if err := f.stop(t); err != nil {
		t.Errorf("Run = %v, want a clean stop", err)
	}
	if f.st.closed.Load() != 1 {
		t.Error("store not closed")
	}
}
