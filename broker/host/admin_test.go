package host

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
)

// fakeEngine implements Engine for the shell's tests.
type fakeEngine struct {
	mu       sync.Mutex
	stats    engine.Stats
	sessions []engine.SessionInfo
	applied  []*config.Config
	refuse   error    // when set, ApplyConfig refuses every config
	refused  []string // the server references RefuseConn was given

	started    atomic.Bool
	draining   atomic.Bool
	gen        atomic.Int64
	served     atomic.Int64
	startErr   error
	startBlock chan struct{} // when set, Start waits for it
	drainBlock chan struct{} // when set, Drain waits for it (or ctx)
	drains     atomic.Int64
}

func (f *fakeEngine) ServeConn(c net.Conn) {
	f.served.Add(1)
	_ = c.Close()
}

// RefuseConn records the server reference the refused connection got.
func (f *fakeEngine) RefuseConn(c net.Conn, serverReference string) {
	f.mu.Lock()
	f.refused = append(f.refused, serverReference)
	f.mu.Unlock()
	_ = c.Close()
}

func (f *fakeEngine) refusedRefs() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.refused...)
}

func (f *fakeEngine) Ready() bool { return f.started.Load() && !f.draining.Load() }

func (f *fakeEngine) Stats() engine.Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

func (f *fakeEngine) Sessions() []engine.SessionInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]engine.SessionInfo(nil), f.sessions...)
}

func (f *fakeEngine) Session(id string) (engine.SessionInfo, bool) {
	for _, s := range f.Sessions() {
		if s.ClientID == id {
			return s, true
		}
	}
	return engine.SessionInfo{}, false
}

func (f *fakeEngine) ConfigGeneration() int64 { return f.gen.Load() }

func (f *fakeEngine) ApplyConfig(cfg *config.Config) ([]config.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return nil, f.refuse
	}
	f.applied = append(f.applied, cfg)
	f.gen.Store(cfg.ConfigGeneration)
	return nil, nil
}

func (f *fakeEngine) appliedConfigs() []*config.Config {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*config.Config(nil), f.applied...)
}

func (f *fakeEngine) Start(ctx context.Context) error {
	if f.startBlock != nil {
		select {
		case <-f.startBlock:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.startErr != nil {
		return f.startErr
	}
	f.started.Store(true)
	return nil
}

func (f *fakeEngine) Drain(ctx context.Context) error {
	f.drains.Add(1)
	f.draining.Store(true)
	if f.drainBlock != nil {
		select {
		case <-f.drainBlock:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func newFakeEngine() *fakeEngine {
	f := &fakeEngine{}
	f.stats = engine.Stats{
		Connections: 3, SessionsOnline: 2, SessionsOffline: 5, QueuedMessages: 42, QueuedBytes: 4200,
		Retained: 7, Drops: map[string]uint64{engine.DropQueueFull: 4, "custom_reason": 1},
		MessagesIn: [3]uint64{10, 20, 30}, MessagesOut: [3]uint64{1, 2, 3}, BytesIn: 1000, BytesOut: 2000,
		Commit:   engine.Histogram{Buckets: map[float64]uint64{0.001: 5, 0.01: 9}, Count: 10, Sum: 0.05},
		Refusals: map[string]uint64{engine.LimitTopic: 3},
		Storage: engine.StorageStats{Used: 900, Budget: 1000, MessageBytes: 400, DiskBytes: 900, VolumeFree: 5000,
			VolumeSize: 10000, MinVolumeFree: 100, Pressure: true},
		TopQueues:    []engine.QueueDepth{{ClientID: "b/c", Messages: 42, Bytes: 4200}},
		FullestQueue: 0.42,
		CensusAt:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		RecentDrops:  map[string]uint64{engine.DropQueueFull: 2, engine.DropExpired: 0},
		Fsync:        engine.Histogram{Buckets: map[float64]uint64{0.001: 3, 0.01: 4}, Count: 4, Sum: 0.012},
	}
	f.sessions = []engine.SessionInfo{
		{ClientID: "a", Online: true, Persistent: true, QueuedMessages: 0},
		{ClientID: "b/c", Online: false, Persistent: true, QueuedMessages: 42, QueuedBytes: 4200, ExpiryInterval: 3600},
	}
	return f
}

type adminFixture struct {
	eng      *fakeEngine
	ready    atomic.Bool
	draining atomic.Bool
	reload   ReloadStatus
	srv      *httptest.Server
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	f := &adminFixture{eng: newFakeEngine()}
	f.eng.gen.Store(9)
	f.reload = ReloadStatus{ConfigFile: "/etc/bollard.yaml", PendingRestartFields: []string{"dataDir"}, LastError: "config: logLevel: bad", Reloads: 2, Failures: 1,
		RefusedGeneration: 10, RefusedError: "config: logLevel: bad"}
	h := NewAdminHandler(AdminConfig{
		Backend: f.eng, Version: "v1.2.3", Started: time.Now().Add(-time.Minute),
		Ready:    f.ready.Load,
		Drain:    func() { f.draining.Store(true) },
		Draining: f.draining.Load,
		Reload:   func() ReloadStatus { return f.reload },
		Log:      testLogger(t),
		Auth:     openAdminAuth(t),
	})
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *adminFixture) do(t *testing.T, method, path string) (int, string) {
	t.Helper()
	code, body, _ := call(t, f.srv, method, path, "")
	return code, body
}

func TestAdminHealthAndReadiness(t *testing.T) {
	f := newAdminFixture(t)
	if code, _ := f.do(t, "GET", "/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := f.do(t, "GET", "/readyz"); code != 503 || !strings.Contains(body, "starting") {
		t.Errorf("/readyz before ready = %d %q", code, body)
	}
	f.ready.Store(true)
	if code, _ := f.do(t, "GET", "/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	if code, _ := f.do(t, "GET", "/v1/drain"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /v1/drain = %d", code)
	}
	if code, _ := f.do(t, "POST", "/v1/drain"); code != http.StatusAccepted {
		t.Errorf("POST /v1/drain = %d", code)
	}
	if code, body := f.do(t, "GET", "/readyz"); code != 503 || !strings.Contains(body, "draining") {
		t.Errorf("/readyz while draining = %d %q", code, body)
	}
	if code, _ := f.do(t, "GET", "/healthz"); code != 200 {
		t.Errorf("/healthz while draining = %d", code)
	}
}

func TestAdminStatus(t *testing.T) {
	f := newAdminFixture(t)
	f.ready.Store(true)
	code, body := f.do(t, "GET", "/v1/status")
	if code != 200 {
		t.Fatalf("/v1/status = %d %s", code, body)
	}
	var s map[string]any
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"version": "v1.2.3", "configGeneration": 9.0, "pendingRestart": true, "ready": true,
		"lastReloadError": "config: logLevel: bad", "draining": false, "queuedMessages": 42.0,
		"refusedConfigGeneration": 10.0, "refusedConfigError": "config: logLevel: bad",
	}
	for k, v := range want {
		if s[k] != v {
			t.Errorf("%s = %v, want %v", k, s[k], v)
		}
	}
	if up, _ := s["uptimeSeconds"].(float64); up < 59 {
		t.Errorf("uptimeSeconds = %v", s["uptimeSeconds"])
	}
	if f, _ := s["pendingRestartFields"].([]any); len(f) != 1 || f[0] != "dataDir" {
		t.Errorf("pendingRestartFields = %v", s["pendingRestartFields"])
	}
	// The operator's status: the census and the recent drops.
	for k, v := range map[string]any{"countedAt": "2026-01-02T03:04:05Z", "fullestQueueRatio": 0.42, "queuedBytes": 4200.0} {
		if s[k] != v {
			t.Errorf("%s = %v, want %v", k, s[k], v)
		}
	}
	if top, _ := s["topQueues"].([]any); len(top) != 1 || fmt.Sprint(top[0]) != "map[bytes:4200 clientID:b/c messages:42]" {
		t.Errorf("topQueues = %v", s["topQueues"])
	}
	if rd := fmt.Sprint(s["recentDrops"]); rd != "map[byReason:map[queue_full:2] windowSeconds:300]" {
		t.Errorf("recentDrops = %s (reasons without drops are left out)", rd)
	}
	// The operator reads storage.{usedBytes,budgetBytes,volumeFreeBytes,pressure}.
	sg, _ := s["storage"].(map[string]any)
	for k, v := range map[string]any{"usedBytes": 900.0, "budgetBytes": 1000.0, "volumeFreeBytes": 5000.0, "pressure": true} {
		if sg[k] != v {
			t.Errorf("storage.%s = %v, want %v", k, sg[k], v)
		}
	}
}

func TestAdminSessions(t *testing.T) {
	f := newAdminFixture(t)
	var list SessionList
	code, body := f.do(t, "GET", "/v1/sessions")
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil {
		t.Fatalf("/v1/sessions = %d %v %s", code, err, body)
	}
	if list.Total != 2 || len(list.Sessions) != 2 || list.Truncated {
		t.Errorf("list = %+v", list)
	}
	code, body = f.do(t, "GET", "/v1/sessions?limit=1")
	if err := json.Unmarshal([]byte(body), &list); code != 200 || err != nil || len(list.Sessions) != 1 || !list.Truncated {
		t.Errorf("limit=1: %d %s", code, body)
	}
	if code, _ := f.do(t, "GET", "/v1/sessions?limit=0"); code != 400 {
		t.Errorf("limit=0: %d", code)
	}
	for _, path := range []string{"/v1/sessions/b%2Fc", "/v1/sessions?clientId=b%2Fc"} {
		var one engine.SessionInfo
		code, body := f.do(t, "GET", path)
		if err := json.Unmarshal([]byte(body), &one); code != 200 || err != nil {
			t.Fatalf("%s = %d %v %s", path, code, err, body)
		}
		if one.ClientID != "b/c" || one.QueuedMessages != 42 || one.QueuedBytes != 4200 || one.Online {
			t.Errorf("%s = %+v", path, one)
		}
	}
	if code, body := f.do(t, "GET", "/v1/sessions/nobody"); code != 404 || !strings.Contains(body, "nobody") {
		t.Errorf("missing session = %d %s", code, body)
	}
	f.eng.mu.Lock()
	f.eng.sessions = nil
	f.eng.mu.Unlock()
	if _, body := f.do(t, "GET", "/v1/sessions"); !strings.Contains(body, `"sessions": []`) {
		t.Errorf("empty list renders as %s", body)
	}
}

func TestAdminDrainUnavailable(t *testing.T) {
	srv := httptest.NewServer(NewAdminHandler(AdminConfig{Backend: newFakeEngine(), Auth: openAdminAuth(t)}))
	defer srv.Close()
	resp, err := srv.Client().Post(srv.URL+"/v1/drain", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotImplemented {
		t.Errorf("POST /v1/drain without a drain func = %d", resp.StatusCode)
	}
}

func TestListenAdmin(t *testing.T) {
	a, err := ListenAdmin("127.0.0.1:0", NewAdminHandler(AdminConfig{Backend: newFakeEngine()}), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + a.Addr().String() + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := a.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := ListenAdmin("nowhere", nil, testLogger(t)); err == nil || !strings.Contains(err.Error(), "admin listener") {
		t.Errorf("bad address: %v", err)
	}
}
