package host

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/lograte"
)

// Reasons an admin request is refused, the reason label of
// bollard_admin_requests_refused_total.
const (
	// AdminRefusedNoToken: the request carries no bearer token.
	AdminRefusedNoToken = "missing_token"
	// AdminRefusedWrongToken: the request carries a token that is not the
	// configured one.
	AdminRefusedWrongToken = "wrong_token"
	// AdminRefusedNotConfigured: no admin.tokenFile is configured and the
	// admin endpoint is not on loopback, so /v1/* is closed to everyone.
	AdminRefusedNotConfigured = "no_token_configured"
)

// adminRefusedReasons are exported at zero from the start.
var adminRefusedReasons = []string{AdminRefusedNoToken, AdminRefusedWrongToken, AdminRefusedNotConfigured}

const (
	// minAdminTokenBytes refuses tokens short enough to guess.
	minAdminTokenBytes = 16
	// maxAdminTokenFileBytes bounds what is read from the token file.
	maxAdminTokenFileBytes = 4 << 10
	// adminTokenRecheck is how often the token file is looked at for a
	// rotated token (at most once per period, on a request).
	adminTokenRecheck = time.Second
	// adminRefusedLogEvery rate-limits the log line about refused requests.
	adminRefusedLogEvery = 10 * time.Second
)

// AdminAuth decides whether a request may use /v1/*: with a token file,
// only requests with `Authorization: Bearer <token>` may; without one, all
// requests may when the endpoint is on loopback (local development), and
// none may otherwise. The token is compared as a SHA-256 digest in constant
// time, so neither its content nor its length leaks through timing.
type AdminAuth struct {
	file string
	open bool
	log  *slog.Logger

	mu        sync.Mutex
	sum       [sha256.Size]byte // digest of the token, when file != ""
	stamp     tokenStamp        // what the file looked like when read
	lastCheck time.Time

	refused map[string]*atomic.Uint64
	// refusedLog logs refusals at most once per adminRefusedLogEvery.
	refusedLog lograte.Limiter
	nowFunc    func() time.Time
	readCount  atomic.Int64 // token file reads, for tests
}

// tokenStamp identifies a version of the token file.
type tokenStamp struct {
	mod  time.Time
	size int64
}

// ErrAdminToken reports an unusable admin token file.
var ErrAdminToken = errors.New("host: admin token")

// NewAdminAuth reads tokenFile ("" for none). loopback says whether the
// admin endpoint listens on loopback only; it matters only without a token
// file. A token file that cannot be read, is empty or too short is an
// error (wrapping ErrAdminToken): the broker does not start with it.
func NewAdminAuth(tokenFile string, loopback bool, log *slog.Logger) (*AdminAuth, error) {
	if log == nil {
		log = slog.Default()
	}
	a := &AdminAuth{file: tokenFile, open: tokenFile == "" && loopback, log: log,
		refusedLog: lograte.Limiter{Every: adminRefusedLogEvery},
		refused:    map[string]*atomic.Uint64{}, nowFunc: time.Now}
	for _, r := range adminRefusedReasons {
		a.refused[r] = new(atomic.Uint64)
	}
	if tokenFile == "" {
		return a, nil
	}
	sum, st, err := a.readToken()
	if err != nil {
		return nil, err
	}
	a.sum, a.stamp, a.lastCheck = sum, st, a.nowFunc()
	return a, nil
}

// Mode describes the policy for the startup log: "token", "loopback-open"
// or "closed".
func (a *AdminAuth) Mode() string {
	switch {
	case a == nil:
		return "closed"
	case a.file != "":
		return "token"
	case a.open:
		return "loopback-open"
	default:
		return "closed"
	}
}

// readToken reads and checks the token file.
func (a *AdminAuth) readToken() ([sha256.Size]byte, tokenStamp, error) {
	a.readCount.Add(1)
	var sum [sha256.Size]byte
	f, err := os.Open(a.file)
	if err != nil {
		return sum, tokenStamp{}, fmt.Errorf("%w: %w", ErrAdminToken, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return sum, tokenStamp{}, fmt.Errorf("%w: %w", ErrAdminToken, err)
	}
	buf, err := io.ReadAll(io.LimitReader(f, maxAdminTokenFileBytes+1))
	if err != nil {
		return sum, tokenStamp{}, fmt.Errorf("%w: reading %s: %w", ErrAdminToken, a.file, err)
	}
	if len(buf) > maxAdminTokenFileBytes {
		return sum, tokenStamp{}, fmt.Errorf("%w: %s is larger than %d bytes", ErrAdminToken, a.file, maxAdminTokenFileBytes)
	}
	tok := bytes.TrimSpace(buf)
	if len(tok) < minAdminTokenBytes {
		return sum, tokenStamp{}, fmt.Errorf("%w: %s holds %d bytes, at least %d are required", ErrAdminToken, a.file, len(tok), minAdminTokenBytes)
	}
	if bytes.ContainsAny(tok, " \t\r\n") {
		return sum, tokenStamp{}, fmt.Errorf("%w: %s: the token must not contain whitespace", ErrAdminToken, a.file)
	}
	return sha256.Sum256(tok), tokenStamp{mod: fi.ModTime(), size: fi.Size()}, nil
}

// current returns the token digest, re-reading the file when it changed
// (checked at most once per adminTokenRecheck). A changed file that is not
// usable keeps the previous token, and says so in the log.
func (a *AdminAuth) current() [sha256.Size]byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.nowFunc()
	if now.Sub(a.lastCheck) < adminTokenRecheck {
		return a.sum
	}
	a.lastCheck = now
	fi, err := os.Stat(a.file)
	if err != nil {
		a.log.Warn("admin token file unreadable; keeping the previous token", "file", a.file, "err", err)
		return a.sum
	}
	if (tokenStamp{mod: fi.ModTime(), size: fi.Size()}) == a.stamp {
		return a.sum
	}
	sum, st, err := a.readToken()
	if err != nil {
		a.log.Warn("admin token file changed but is not usable; keeping the previous token", "err", err)
		return a.sum
	}
	if sum != a.sum {
		a.log.Info("admin token file changed; using the new token", "file", a.file)
	}
	a.sum, a.stamp = sum, st
	return a.sum
}

// check returns "" when r may use /v1/*, else the refusal reason.
func (a *AdminAuth) check(r *http.Request) string {
	if a == nil {
		return AdminRefusedNotConfigured
	}
	if a.file == "" {
		if a.open {
			return ""
		}
		return AdminRefusedNotConfigured
	}
	tok, ok := bearerToken(r.Header.Get("Authorization"))
	if !ok {
		return AdminRefusedNoToken
	}
	if !a.matches(tok) {
		return AdminRefusedWrongToken
	}
	return ""
}

// matches compares tok with the configured token (see tokenEqual).
func (a *AdminAuth) matches(tok string) bool {
	return tokenEqual(tok, a.current())
}

// tokenEqual compares tok with the token whose SHA-256 digest is want, in
// constant time: tok is reduced to its digest too, and the digests are
// compared with subtle.ConstantTimeCompare, so the time taken depends on
// neither how much of tok is right nor the token's length.
func tokenEqual(tok string, want [sha256.Size]byte) bool {
	got := sha256.Sum256([]byte(tok))
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// bearerToken extracts the token of an "Authorization: Bearer <token>"
// header; the scheme is case-insensitive (RFC 6750, RFC 9110 11.1).
func bearerToken(h string) (string, bool) {
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// Refused returns the refused requests by reason.
func (a *AdminAuth) Refused() map[string]uint64 {
	out := make(map[string]uint64, len(adminRefusedReasons))
	for _, r := range adminRefusedReasons {
		out[r] = 0
		if a != nil {
			out[r] = a.refused[r].Load()
		}
	}
	return out
}

// guard wraps a /v1/* handler with the check.
func (a *AdminAuth) guard(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		reason := a.check(r)
		if reason == "" {
			h(w, r)
			return
		}
		a.refuse(w, r, reason)
	}
}

// refuse answers a refused request, counts it and logs it (rate-limited:
// a flood of refused requests must not flood the log). Neither the token
// presented nor the header is logged.
func (a *AdminAuth) refuse(w http.ResponseWriter, r *http.Request, reason string) {
	if a != nil {
		a.refused[reason].Add(1)
		a.logRefusal(r, reason)
	}
	if reason == AdminRefusedNotConfigured {
		writeError(w, http.StatusForbidden, errors.New("the admin API is closed: the admin endpoint is not on loopback "+
			"and no admin.tokenFile is configured"))
		return
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="bollard-admin"`)
	writeError(w, http.StatusUnauthorized, errors.New("a valid admin token is required (Authorization: Bearer <token>)"))
}

func (a *AdminAuth) logRefusal(r *http.Request, reason string) {
	if ok, skipped := a.refusedLog.Allow("", a.nowFunc()); ok {
		a.log.Warn("admin request refused", "reason", reason, "method", r.Method, "path", r.URL.Path,
			"remote", r.RemoteAddr, "unlogged_before", skipped)
	}
}
