package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

// Attacks on the admin endpoint, against the real binary: an
// unauthenticated caller can neither stop the broker nor list its clients,
// while honest clients keep publishing and consuming.

const (
	adminAbuseToken = "abuse-test-token-0123456789abcdef"
	// adminAbuseRSSBound is the resident set the broker must stay under
	// during the attack: it starts near 20 MB and stays near 26 MB (near 50
	// and 75 MB in a -race build, which adminRSSBound allows for).
	adminAbuseRSSBound = 64 << 20
	adminAbuseDuration = 3 * time.Second
)

// adminRSS reads VmRSS of pid from /proc, in bytes.
func adminRSSBound() int64 {
	if raceBuild {
		return 160 << 20
	}
	return adminAbuseRSSBound
}

func adminRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Fatalf("reading RSS: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			if err != nil {
				t.Fatalf("VmRSS %q: %v", line, err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc status")
	return 0
}

// adminDo sends one admin request; authz "" sends no Authorization header.
func adminDo(c *http.Client, method, url, authz string) (int, string, error) {
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		return 0, "", err
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, string(body), err
}

// honestPair is a QoS 1 publisher and a persistent QoS 1 subscriber.
type honestPair struct {
	pub    *publisher
	got    *received
	sub    *paho.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startHonestPair(t *testing.T, addr, topic string) *honestPair {
	t.Helper()
	h := &honestPair{pub: &publisher{topic: topic, qos: 1, max: 1 << 30}, got: newReceived(), done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	sub, _, err := mqtttest.Dial(ctx, addr, "honest-sub", true, 3600, h.got.add)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: topic, QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	h.sub = sub
	pctx, pcancel := context.WithCancel(context.Background())
	h.cancel = pcancel
	go func() {
		defer close(h.done)
		h.pub.run(pctx, addr, "honest-pub")
	}()
	t.Cleanup(func() { pcancel(); <-h.done })
	return h
}

// stop ends the publisher and returns the last acknowledged sequence
// number (a publish cut short may still be delivered: covers allows it).
func (h *honestPair) stop(t *testing.T) int {
	t.Helper()
	h.cancel()
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatal("honest publisher did not stop")
	}
	return h.pub.ackedCount()
}

// TestAbuseAdminUnauthenticated: with a token file, unauthenticated and
// wrong-token callers hammer POST /v1/drain and GET /v1/sessions (and the
// rest of /v1) while an honest publisher and subscriber exchange QoS 1
// messages. Every call is refused and counted; the broker stays ready,
// the honest pair keeps working and loses nothing acknowledged, RSS stays
// bounded. An authenticated drain then makes the process exit, and it
// starts again on its data.
func TestAbuseAdminUnauthenticated(t *testing.T) {
	skipAbuseIfShort(t)
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "admin-token")
	if err := os.WriteFile(tokenFile, []byte(adminAbuseToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(dir, "data")
	b := startBollard(t, "--data-dir", dataDir, "--admin-token-file", tokenFile)
	pid := b.cmd.Process.Pid
	rss0 := adminRSS(t, pid)
	h := startHonestPair(t, b.mqtt, "honest/admin")
	waitUntil(t, 20*time.Second, "honest traffic flowing", func() bool { return h.pub.ackedCount() > 10 })

	base := "http://" + b.admin
	attacks := []struct{ method, path, authz string }{
		{"POST", "/v1/drain", ""},
		{"GET", "/v1/sessions", ""},
		{"GET", "/v1/sessions/honest-sub", ""},
		{"GET", "/v1/status", ""},
		{"POST", "/v1/drain", "Bearer wrong-" + adminAbuseToken},
		{"GET", "/v1/sessions", "Bearer " + adminAbuseToken[:len(adminAbuseToken)-1]},
		{"GET", "/v1/sessions", "Basic " + adminAbuseToken},
		{"GET", "/v1/sessions?clientId=honest-sub", "bearer nope"},
	}
	var sent, refused, leaked, other atomic.Int64
	var maxRSS atomic.Int64
	maxRSS.Store(rss0)
	ackedBefore := h.pub.ackedCount()
	stopAt := time.Now().Add(adminAbuseDuration)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			c := &http.Client{Timeout: 5 * time.Second}
			for i := w; time.Now().Before(stopAt); i++ {
				a := attacks[i%len(attacks)]
				code, body, err := adminDo(c, a.method, base+a.path, a.authz)
				sent.Add(1)
				switch {
				case err != nil:
					other.Add(1)
				case code == http.StatusUnauthorized:
					refused.Add(1)
				default:
					other.Add(1)
				}
				if strings.Contains(body, "honest-") {
					leaked.Add(1)
				}
			}
		})
	}
	wg.Go(func() {
		for time.Now().Before(stopAt) {
			if r := adminRSS(t, pid); r > maxRSS.Load() {
				maxRSS.Store(r)
			}
			time.Sleep(50 * time.Millisecond) // sampling period
		}
	})
	wg.Wait()
	ackedDuring := h.pub.ackedCount() - ackedBefore

	if code, body := b.get("/readyz"); code != 200 {
		t.Fatalf("/readyz after the attack = %d %s", code, body)
	}
	if other.Load() != 0 || leaked.Load() != 0 || refused.Load() != sent.Load() {
		t.Errorf("attack requests: sent %d, refused (401) %d, other answers or errors %d, answers naming a client %d",
			sent.Load(), refused.Load(), other.Load(), leaked.Load())
	}
	if ackedDuring == 0 {
		t.Error("the honest publisher got no acknowledgement during the attack")
	}
	_, metrics := b.get("/metrics")
	for _, name := range []string{"honest-sub", "honest-pub"} {
		if strings.Contains(metrics, name) {
			t.Errorf("/metrics names client %s", name)
		}
	}
	refusedMetric := adminRefusedFromMetrics(t, metrics)
	if refusedMetric != sent.Load() {
		t.Errorf("bollard_admin_requests_refused_total = %d, want %d", refusedMetric, sent.Load())
	}

	acked := h.stop(t)
	want := map[string]int{"honest/admin": acked}
	waitUntil(t, 30*time.Second, "subscriber received every acknowledged message", func() bool { return h.got.covers(want) })
	rss := maxRSS.Load()
	t.Logf("admin attack: %d requests in %s (%.0f/s), all refused (401), %d counted on /metrics; honest QoS 1: %d acknowledged during the attack, %d in all, all delivered; RSS %.1f MB before, %.1f MB max (bound %d MB)",
		sent.Load(), adminAbuseDuration, float64(sent.Load())/adminAbuseDuration.Seconds(), refusedMetric,
		ackedDuring, acked, float64(rss0)/(1<<20), float64(rss)/(1<<20), adminRSSBound()>>20)
	if rss > adminRSSBound() {
		t.Errorf("RSS %d bytes exceeds the bound %d", rss, adminRSSBound())
	}

	// The honest client sees its own session through the authenticated API.
	c := &http.Client{Timeout: 5 * time.Second}
	code, body, err := adminDo(c, "GET", base+"/v1/sessions/honest-sub", "Bearer "+adminAbuseToken)
	if err != nil || code != 200 || !strings.Contains(body, "honest-sub") {
		t.Fatalf("authenticated /v1/sessions/honest-sub = %d %v %s", code, err, body)
	}
	if err := h.sub.Disconnect(&paho.Disconnect{}); err != nil {
		t.Errorf("disconnect subscriber: %v", err)
	}

	// An authenticated drain is a shutdown step: the process exits 0.
	code, _, err = adminDo(c, "POST", base+"/v1/drain", "Bearer "+adminAbuseToken)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("authenticated POST /v1/drain = %d %v", code, err)
	}
	t0 := time.Now()
	if exit := b.wait(30 * time.Second); exit != 0 {
		t.Errorf("exit code after drain = %d", exit)
	}
	t.Logf("authenticated drain: process exited in %s", time.Since(t0).Round(time.Millisecond))
	if _, i := b.logs.find("store closed"); i < 0 {
		t.Error("no \"store closed\" after the drain")
	}

	// It starts again on the same data (as Kubernetes restarts it), with
	// the honest subscriber's session.
	b2 := startBollard(t, "--data-dir", dataDir, "--admin-token-file", tokenFile)
	code, body, err = adminDo(c, "GET", "http://"+b2.admin+"/v1/sessions/honest-sub", "Bearer "+adminAbuseToken)
	if err != nil || code != 200 {
		t.Fatalf("session after restart: %d %v %s", code, err, body)
	}
	// Everything acknowledged was delivered before the drain; a publish cut
	// short by stop may have reached the broker after the subscriber left,
	// and waits in its queue (at most that one).
	var s sessionInfo
	if err := json.Unmarshal([]byte(body), &s); err != nil || s.ClientID != "honest-sub" || s.QueuedMessages > 1 {
		t.Errorf("session after restart: %+v %v", s, err)
	}
}

// adminRefusedFromMetrics sums bollard_admin_requests_refused_total.
func adminRefusedFromMetrics(t *testing.T, metrics string) int64 {
	t.Helper()
	var n int64
	for _, line := range strings.Split(metrics, "\n") {
		if !strings.HasPrefix(line, "bollard_admin_requests_refused_total{") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		n += int64(v)
	}
	return n
}

// TestAbuseAdminDefaults: without a token file, the admin API answers on a
// loopback admin address (local development) and is closed (403) on any
// other, while /healthz, /readyz and /metrics stay open; a token file that
// is missing or too short stops the broker at start with a clear error.
func TestAbuseAdminDefaults(t *testing.T) {
	skipAbuseIfShort(t)
	wide := startBollard(t, "--durability", "none", "--admin-listen", "0.0.0.0:0")
	_, port, err := net.SplitHostPort(wide.admin)
	if err != nil {
		t.Fatal(err)
	}
	base := "http://127.0.0.1:" + port
	c := &http.Client{Timeout: 5 * time.Second}
	for _, p := range []string{"/v1/status", "/v1/sessions"} {
		if code, body, err := adminDo(c, "GET", base+p, ""); err != nil || code != http.StatusForbidden {
			t.Errorf("non-loopback admin, no token: %s = %d %v %s", p, code, err, body)
		}
	}
	if code, _, err := adminDo(c, "POST", base+"/v1/drain", ""); err != nil || code != http.StatusForbidden {
		t.Errorf("non-loopback admin, no token: POST /v1/drain = %d %v", code, err)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		if code, _, err := adminDo(c, "GET", base+p, ""); err != nil || code != 200 {
			t.Errorf("non-loopback admin, no token: %s = %d %v", p, code, err)
		}
	}
	if !strings.Contains(wide.logs.String(), "admin API closed") {
		t.Error("no warning that the admin API is closed")
	}

	local := startBollard(t, "--durability", "none")
	if code, _ := local.get("/v1/status"); code != 200 {
		t.Errorf("loopback admin, no token: /v1/status = %d", code)
	}

	short := filepath.Join(t.TempDir(), "short")
	if err := os.WriteFile(short, []byte("tooshort"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{short, filepath.Join(t.TempDir(), "missing")} {
		code, _, stderr := runBollard(t, "--durability", "none", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--admin-token-file", file)
		if code == 0 || !strings.Contains(stderr, "admin token") {
			t.Errorf("token file %s: exit %d, stderr %s", filepath.Base(file), code, stderr)
		}
	}
}
