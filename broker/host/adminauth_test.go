package host

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// openAdminAuth is the policy of a loopback admin endpoint without a token.
func openAdminAuth(t *testing.T) *AdminAuth {
	t.Helper()
	a, err := NewAdminAuth("", true, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

const testAdminToken = "0123456789abcdef0123456789abcdef"

func writeToken(t *testing.T, path, tok string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(tok), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tokenAuth is an AdminAuth reading testAdminToken from a file, with a
// clock the test moves.
func tokenAuth(t *testing.T) (*AdminAuth, string, *fakeClock) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	writeToken(t, path, testAdminToken+"\n")
	a, err := NewAdminAuth(path, false, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock(time.Now()) // the token file's checks began on the real clock
	a.nowFunc = clk.Now
	return a, path, clk
}

func authServer(t *testing.T, a *AdminAuth) *httptest.Server {
	t.Helper()
	eng := newFakeEngine()
	eng.sessions[0].Principal = "alice-the-user"
	srv := httptest.NewServer(NewAdminHandler(AdminConfig{
		Backend: eng, Version: "v", Ready: func() bool { return true },
		Drain: func() {}, Log: testLogger(t), Auth: a,
	}))
	t.Cleanup(srv.Close)
	return srv
}

func call(t *testing.T, srv *httptest.Server, method, path, authz string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// v1Routes are every /v1 route, plus ones that do not exist: an
// unauthenticated caller must not learn which exist.
var v1Routes = []struct{ method, path string }{
	{"GET", "/v1/status"}, {"GET", "/v1/sessions"}, {"GET", "/v1/sessions/a"},
	{"GET", "/v1/sessions?clientId=a"}, {"POST", "/v1/drain"}, {"GET", "/v1/drain"},
	{"GET", "/v1/nothing"}, {"DELETE", "/v1/sessions/a"},
}

func TestAdminAuthToken(t *testing.T) {
	a, _, _ := tokenAuth(t)
	srv := authServer(t, a)
	cases := map[string]struct {
		authz  string
		reason string
	}{
		"no header":           {"", AdminRefusedNoToken},
		"basic scheme":        {"Basic " + testAdminToken, AdminRefusedNoToken},
		"bearer, empty":       {"Bearer ", AdminRefusedNoToken},
		"wrong token":         {"Bearer wrong-token-wrong-token-wrong", AdminRefusedWrongToken},
		"prefix of token":     {"Bearer " + testAdminToken[:31], AdminRefusedWrongToken},
		"token plus a byte":   {"Bearer " + testAdminToken + "0", AdminRefusedWrongToken},
		"token in other case": {"Bearer " + strings.ToUpper(testAdminToken), AdminRefusedWrongToken},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			for _, r := range v1Routes {
				before := a.Refused()[c.reason]
				code, body, hdr := call(t, srv, r.method, r.path, c.authz)
				if code != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
					t.Errorf("%s %s = %d %s", r.method, r.path, code, body)
				}
				if strings.Contains(body, "b/c") || strings.Contains(body, "alice") {
					t.Errorf("%s %s leaks session data: %s", r.method, r.path, body)
				}
				if got := a.Refused()[c.reason]; got != before+1 {
					t.Errorf("refused[%s] = %d, want %d", c.reason, got, before+1)
				}
			}
		})
	}
	for _, authz := range []string{"Bearer " + testAdminToken, "bearer " + testAdminToken} {
		if code, body, _ := call(t, srv, "GET", "/v1/sessions", authz); code != 200 || !strings.Contains(body, "b/c") {
			t.Errorf("%q: /v1/sessions = %d %s", authz, code, body)
		}
	}
	if code, _, _ := call(t, srv, "GET", "/v1/drain", "Bearer "+testAdminToken); code != http.StatusMethodNotAllowed {
		t.Errorf("authenticated GET /v1/drain = %d", code)
	}
	if code, _, _ := call(t, srv, "POST", "/v1/drain", "Bearer "+testAdminToken); code != http.StatusAccepted {
		t.Errorf("authenticated POST /v1/drain = %d", code)
	}
}

// TestAdminAuthOpenEndpoints: /healthz, /readyz and /metrics need no token
// and reveal no client ID or username; /metrics counts the refusals.
func TestAdminAuthOpenEndpoints(t *testing.T) {
	a, _, _ := tokenAuth(t)
	srv := authServer(t, a)
	call(t, srv, "GET", "/v1/sessions", "")
	call(t, srv, "GET", "/v1/sessions", "Bearer nope-nope-nope-nope")
	call(t, srv, "GET", "/v1/sessions", "Bearer nope-nope-nope-nope")
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		code, body, _ := call(t, srv, "GET", p, "")
		if code != 200 {
			t.Errorf("%s = %d", p, code)
		}
		for _, secret := range []string{"b/c", "alice-the-user", testAdminToken} {
			if strings.Contains(body, secret) {
				t.Errorf("%s reveals %q", p, secret)
			}
		}
		if p != "/metrics" {
			continue
		}
		for _, want := range []string{
			`bollard_admin_requests_refused_total{reason="missing_token"} 1`,
			`bollard_admin_requests_refused_total{reason="wrong_token"} 2`,
			`bollard_admin_requests_refused_total{reason="no_token_configured"} 0`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	}
}

// TestAdminAuthNoToken: without a token file, /v1 is open on loopback and
// closed (403) elsewhere; a nil AdminAuth is closed too.
func TestAdminAuthNoToken(t *testing.T) {
	open := authServer(t, openAdminAuth(t))
	if code, _, _ := call(t, open, "GET", "/v1/status", ""); code != 200 {
		t.Errorf("loopback without token: /v1/status = %d", code)
	}
	closedAuth, err := NewAdminAuth("", false, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, a := range map[string]*AdminAuth{"non-loopback": closedAuth, "nil": nil} {
		srv := authServer(t, a)
		for _, r := range v1Routes {
			code, body, _ := call(t, srv, r.method, r.path, "Bearer "+testAdminToken)
			if code != http.StatusForbidden || !strings.Contains(body, "tokenFile") {
				t.Errorf("%s: %s %s = %d %s", name, r.method, r.path, code, body)
			}
		}
		if code, _, _ := call(t, srv, "GET", "/healthz", ""); code != 200 {
			t.Errorf("%s: /healthz = %d", name, code)
		}
	}
	if got := closedAuth.Refused()[AdminRefusedNotConfigured]; got != uint64(len(v1Routes)) {
		t.Errorf("refused no_token_configured = %d, want %d", got, len(v1Routes))
	}
}

func TestAdminAuthBadTokenFile(t *testing.T) {
	dir := t.TempDir()
	cases := map[string]string{
		"empty":      "",
		"blank":      " \n\t\n",
		"too short":  "short-token\n",
		"whitespace": "0123456789abcdef 0123456789abcdef",
		"too large":  strings.Repeat("x", maxAdminTokenFileBytes+1),
	}
	for name, content := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		writeToken(t, path, content)
		if _, err := NewAdminAuth(path, true, testLogger(t)); !errors.Is(err, ErrAdminToken) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
	if _, err := NewAdminAuth(filepath.Join(dir, "missing"), true, testLogger(t)); !errors.Is(err, ErrAdminToken) || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: err = %v", err)
	}
}

// TestAdminAuthRotation: a rewritten token file applies without a restart;
// a rewritten file that is unusable keeps the previous token.
func TestAdminAuthRotation(t *testing.T) {
	a, path, clk := tokenAuth(t)
	srv := authServer(t, a)
	const next = "fedcba9876543210fedcba9876543210"
	writeToken(t, path, next)
	future := time.Now().Add(time.Hour)
	if err := os.Chtimes(path, future, future); err != nil {
		t.Fatal(err)
	}
	// Within the recheck period, the file is not looked at.
	if code, _, _ := call(t, srv, "GET", "/v1/status", "Bearer "+testAdminToken); code != 200 {
		t.Errorf("old token before recheck = %d", code)
	}
	clk.Advance(2 * adminTokenRecheck)
	if code, _, _ := call(t, srv, "GET", "/v1/status", "Bearer "+next); code != 200 {
		t.Errorf("new token = %d", code)
	}
	if code, _, _ := call(t, srv, "GET", "/v1/status", "Bearer "+testAdminToken); code != 401 {
		t.Errorf("old token after rotation = %d", code)
	}
	reads := a.readCount.Load()
	clk.Advance(2 * adminTokenRecheck)
	call(t, srv, "GET", "/v1/status", "Bearer "+next)
	if a.readCount.Load() != reads {
		t.Errorf("unchanged file re-read")
	}
	writeToken(t, path, "short")
	later := future.Add(time.Hour)
	if err := os.Chtimes(path, later, later); err != nil {
		t.Fatal(err)
	}
	clk.Advance(2 * adminTokenRecheck)
	if code, _, _ := call(t, srv, "GET", "/v1/status", "Bearer "+next); code != 200 {
		t.Errorf("unusable rewrite dropped the token: %d", code)
	}
	if code, _, _ := call(t, srv, "GET", "/v1/status", "Bearer short"); code != 401 {
		t.Errorf("unusable token accepted: %d", code)
	}
}

// TestAdminAuthConstantTime: the time to refuse a wrong token does not
// depend on how much of it is right. With a plain == on a 4 KiB token, a
// token whose last byte differs takes tens of times longer to refuse than
// one whose first byte does (measured here: ~100 ns against ~2 ns);
// tokenEqual must take the same time for both.
func TestAdminAuthConstantTime(t *testing.T) {
	tok := strings.Repeat("k", maxAdminTokenFileBytes)
	want := sha256.Sum256([]byte(tok))
	early := "x" + tok[1:]
	late := tok[:len(tok)-1] + "x"
	minTime := func(s string) time.Duration {
		best := time.Duration(1 << 62)
		for range 200 {
			t0 := time.Now()
			for range 20 {
				if tokenEqual(s, want) {
					t.Fatal("wrong token matched")
				}
			}
			if d := time.Since(t0); d < best {
				best = d
			}
		}
		return best
	}
	var e, l time.Duration
	for range 3 { // interleave, so a burst of load hits both
		e += minTime(early)
		l += minTime(late)
	}
	ratio := float64(l) / float64(e)
	t.Logf("early mismatch %v, late mismatch %v, ratio %.2f", e/60, l/60, ratio)
	if ratio > 1.5 || ratio < 0.67 {
		t.Errorf("late/early mismatch time ratio %.2f: the compare leaks how much of the token is right", ratio)
	}
	if !tokenEqual(tok, want) {
		t.Error("right token refused")
	}
	// The AdminAuth uses it.
	path := filepath.Join(t.TempDir(), "token")
	writeToken(t, path, tok)
	a, err := NewAdminAuth(path, false, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	if !a.matches(tok) || a.matches(late) {
		t.Error("AdminAuth.matches disagrees with tokenEqual")
	}
}

func TestBearerToken(t *testing.T) {
	cases := map[string]struct {
		tok string
		ok  bool
	}{
		"Bearer abc":    {"abc", true},
		"bearer abc":    {"abc", true},
		"BEARER  abc ":  {"abc", true},
		"Bearer":        {"", false},
		"Bearer ":       {"", false},
		"Basic abc":     {"", false},
		"Bearerabc":     {"", false},
		"":              {"", false},
		"Token abc def": {"", false},
	}
	for h, want := range cases {
		tok, ok := bearerToken(h)
		if tok != want.tok || ok != want.ok {
			t.Errorf("bearerToken(%q) = %q, %v; want %q, %v", h, tok, ok, want.tok, want.ok)
		}
	}
}

// TestAdminAuthRefusalLogIsRateLimited: a flood of refused requests logs
// one line per adminRefusedLogEvery, with the count of those not logged,
// and never the token presented.
func TestAdminAuthRefusalLogIsRateLimited(t *testing.T) {
	a, _, clk := tokenAuth(t)
	var buf bytes.Buffer
	a.log = slog.New(slog.NewTextHandler(&buf, nil))
	srv := authServer(t, a)
	const secret = "Bearer presented-secret-presented-secret"
	for range 50 {
		call(t, srv, "GET", "/v1/sessions", secret)
	}
	clk.Advance(adminRefusedLogEvery)
	call(t, srv, "GET", "/v1/sessions", "")
	out := buf.String()
	if n := strings.Count(out, "admin request refused"); n != 2 {
		t.Errorf("%d log lines for 51 refusals, want 2:\n%s", n, out)
	}
	if !strings.Contains(out, "unlogged_before=49") {
		t.Errorf("the second line does not count the 49 refusals not logged:\n%s", out)
	}
	if strings.Contains(out, "presented-secret") {
		t.Error("the log shows the token presented")
	}
}
