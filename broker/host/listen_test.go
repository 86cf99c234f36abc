package host

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/coder/websocket"
)

// echoHandler is a ConnHandler that echoes every byte back and counts the
// connections it served.
type echoHandler struct {
	served atomic.Int64
}

func (h *echoHandler) ServeConn(c net.Conn) {
	h.served.Add(1)
	defer c.Close()
	_, _ = io.Copy(c, c) // ends when the peer goes away
}

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// tWriter sends log output to t.Log so that it shows only for failures.
type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

// listenersOnly returns a config with only the given listener addresses.
func listenersOnly(mqtt, tlsAddr, ws string) *config.Config {
	c := config.Default()
	c.Listeners.MQTT.Address = mqtt
	c.Listeners.TLS.Address = tlsAddr
	c.Listeners.WebSocket.Address = ws
	return c
}

func startListeners(t *testing.T, cfg *config.Config, h ConnHandler) *ListenerSet {
	t.Helper()
	ls, err := Listen(cfg, h, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ls.Serve()
	t.Cleanup(func() {
		if err := ls.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return ls
}

// roundTrip writes msg on c and expects it echoed back.
func roundTrip(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

func TestListenTCPReportsBoundAddress(t *testing.T) {
	h := &echoHandler{}
	ls := startListeners(t, listenersOnly("127.0.0.1:0", "", ""), h)
	addr := ls.Addr(ListenerMQTT)
	if addr == nil || addr.(*net.TCPAddr).Port == 0 {
		t.Fatalf("Addr = %v, want a bound port", addr)
	}
	if ls.Addr(ListenerTLS) != nil || ls.Addr(ListenerWebSocket) != nil {
		t.Errorf("disabled listeners report addresses: %v", ls.Addrs())
	}
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "hello")
}

func TestListenBindErrorNamesListener(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = Listen(listenersOnly(busy.Addr().String(), "", ""), &echoHandler{}, testLogger(t))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("listener mqtt")) {
		t.Fatalf("err = %v, want one naming the mqtt listener", err)
	}
}

func TestListenerCloseStopsAccepting(t *testing.T) {
	h := &echoHandler{}
	ls, err := Listen(listenersOnly("127.0.0.1:0", "", "127.0.0.1:0"), h, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	ls.Serve()
	addrs := ls.Addrs()
	c, err := net.Dial("tcp", addrs[ListenerMQTT])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "before close")
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ls.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for kind, a := range addrs {
		if c2, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c2.Close()
			t.Errorf("%s still accepts after Close", kind)
		}
	}
	// Accepted connections belong to the handler: they keep working.
	roundTrip(t, c, "after close")
}

func TestListenTLS(t *testing.T) {
	pki := newTestPKI(t)
	cfg := listenersOnly("", "127.0.0.1:0", "")
	cfg.Listeners.TLS.CertFile, cfg.Listeners.TLS.KeyFile = pki.certFile, pki.keyFile
	ls := startListeners(t, cfg, &echoHandler{})
	addr := ls.Addr(ListenerTLS).String()

	c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	roundTrip(t, c, "over tls")
	if v := c.ConnectionState().Version; v < tls.VersionTLS12 {
		t.Errorf("negotiated TLS version %x", v)
	}

	old, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool, MaxVersion: tls.VersionTLS11})
	if err == nil {
		old.Close()
		t.Error("TLS 1.1 handshake succeeded")
	}
}

func TestListenTLSRequireClientCert(t *testing.T) {
	pki := newTestPKI(t)
	cfg := listenersOnly("", "127.0.0.1:0", "")
	l := &cfg.Listeners.TLS
	l.CertFile, l.KeyFile, l.ClientCAFile, l.RequireClientCert = pki.certFile, pki.keyFile, pki.caFile, true
	ls := startListeners(t, cfg, &echoHandler{})
	addr := ls.Addr(ListenerTLS).String()

	withCert, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}})
	if err != nil {
		t.Fatal(err)
	}
	defer withCert.Close()
	roundTrip(t, withCert, "verified")

	// TLS 1.3 reports a missing client certificate on the first read.
	noCert, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool})
	if err == nil {
		defer noCert.Close()
		_ = noCert.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = noCert.Write([]byte("x"))
		if _, err = noCert.Read(make([]byte, 1)); err == nil {
			t.Fatal("a client without a certificate was served")
		}
	}
}

func TestListenTLSBadFiles(t *testing.T) {
	pki := newTestPKI(t)
	cases := map[string]func(*config.TLSListener){
		"missing cert": func(l *config.TLSListener) { l.CertFile = l.CertFile + ".missing" },
		"key as cert":  func(l *config.TLSListener) { l.CertFile = l.KeyFile },
		"missing ca":   func(l *config.TLSListener) { l.ClientCAFile = pki.caFile + ".missing" },
		"ca not pem":   func(l *config.TLSListener) { l.ClientCAFile = pki.keyFile + "x" },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := listenersOnly("", "127.0.0.1:0", "")
			cfg.Listeners.TLS.CertFile, cfg.Listeners.TLS.KeyFile = pki.certFile, pki.keyFile
			mutate(&cfg.Listeners.TLS)
			if _, err := Listen(cfg, &echoHandler{}, testLogger(t)); err == nil {
				t.Fatal("Listen succeeded")
			} else if !bytes.Contains([]byte(err.Error()), []byte("listeners.tls.")) {
				t.Errorf("error %q does not name the field", err)
			}
		})
	}
}

func dialWS(t *testing.T, url string, subprotocols ...string) (net.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: subprotocols})
	if resp != nil && resp.Body != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		if resp != nil {
			return nil, errors.New(resp.Status)
		}
		return nil, err
	}
	if c.Subprotocol() != "mqtt" {
		t.Errorf("negotiated subprotocol %q, want mqtt", c.Subprotocol())
	}
	return websocket.NetConn(context.Background(), c, websocket.MessageBinary), nil
}

func TestListenWebSocket(t *testing.T) {
	h := &echoHandler{}
	cfg := listenersOnly("", "", "127.0.0.1:0")
	cfg.Listeners.WebSocket.Path = "/mqtt"
	ls := startListeners(t, cfg, h)
	url := "ws://" + ls.Addr(ListenerWebSocket).String() + "/mqtt"

	c, err := dialWS(t, url, "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Each Write is one frame: a packet split over frames, then several
	// packets in one frame, must reach the handler as one byte stream.
	for _, frame := range []string{"\x10", "\x02\x00", "\x00\xc0\x00\xe0\x00"} {
		if _, err := c.Write([]byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 8)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "\x10\x02\x00\x00\xc0\x00\xe0\x00" {
		t.Fatalf("stream = %q, %v", buf, err)
	}
	roundTrip(t, c, "more")

	if _, err := dialWS(t, url); err == nil || err.Error() != "400 Bad Request" {
		t.Errorf("dial without subprotocol: err = %v, want 400", err)
	}
	resp, err := http.Get("http://" + ls.Addr(ListenerWebSocket).String() + "/other")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("other path: %s", resp.Status)
	}
}

// firstReadHandler is a ConnHandler that records each connection's remote
// address and the error of its first Read.
type firstReadHandler struct {
	mu   sync.Mutex
	got  []string
	seen chan struct{}
}

func (h *firstReadHandler) ServeConn(c net.Conn) {
	defer c.Close()
	_, err := c.Read(make([]byte, 1))
	h.mu.Lock()
	h.got = append(h.got, fmt.Sprintf("%s %v", c.RemoteAddr(), err))
	h.mu.Unlock()
	h.seen <- struct{}{}
}

// A WebSocket upgrade that fails still reaches the ConnHandler, as a
// connection whose first Read fails with why (as a failed TLS handshake
// does): the engine counts and logs it as a connection error. The client
// has its HTTP error.
func TestWebSocketUpgradeFailuresReachHandler(t *testing.T) {
	h := &firstReadHandler{seen: make(chan struct{}, 4)}
	cfg := listenersOnly("", "", "127.0.0.1:0")
	cfg.Listeners.WebSocket.Path = "/mqtt"
	ls := startListeners(t, cfg, h)
	url := "http://" + ls.Addr(ListenerWebSocket).String() + "/mqtt"
	get := func(header http.Header) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header = header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		select {
		case <-h.seen:
		case <-time.After(5 * time.Second):
			t.Fatal("the failed upgrade did not reach the handler")
		}
		return resp.StatusCode
	}
	// No subprotocol, then the subprotocol without an upgrade.
	if code := get(http.Header{}); code != http.StatusBadRequest {
		t.Errorf("without a subprotocol: %d", code)
	}
	if code := get(http.Header{"Sec-Websocket-Protocol": {"mqtt"}}); code < 400 {
		t.Errorf("without an upgrade: %d", code)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.got) != 2 || !strings.HasPrefix(h.got[0], "127.0.0.1:") || !strings.Contains(h.got[0], `subprotocol "mqtt"`) ||
		!strings.HasPrefix(h.got[1], "127.0.0.1:") || !strings.Contains(h.got[1], "websocket upgrade: ") {
		t.Fatalf("the handler saw %q", h.got)
	}
}

func TestNextAcceptBackoff(t *testing.T) {
	d := time.Duration(0)
	var got []time.Duration
	for range 10 {
		d = nextAcceptBackoff(d)
		got = append(got, d)
	}
	if got[0] != acceptBackoffMin || got[1] != 2*acceptBackoffMin || got[9] != acceptBackoffMax {
		t.Errorf("backoff sequence %v", got)
	}
}

// flakyListener fails Accept a few times before handing out one conn, then
// blocks until closed.
type flakyListener struct {
	net.Listener
	failures atomic.Int64
	conn     net.Conn
	closed   chan struct{}
	once     sync.Once
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.failures.Add(-1) >= 0 {
		return nil, errors.New("accept: too many open files")
	}
	if c := l.conn; c != nil {
		l.conn = nil
		return c, nil
	}
	<-l.closed
	return nil, net.ErrClosed
}

func (l *flakyListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func (l *flakyListener) Close() error { l.once.Do(func() { close(l.closed) }); return nil }

func TestAcceptLoopRetriesAfterErrors(t *testing.T) {
	h := &echoHandler{}
	server, client := net.Pipe()
	defer client.Close()
	fl := &flakyListener{conn: server, closed: make(chan struct{})}
	fl.failures.Store(3)
	ls := &ListenerSet{log: testLogger(t), handler: h, done: make(chan struct{})}
	ls.listeners = []*boundListener{ls.streamListener(ListenerMQTT, fl)}
	ls.Serve()
	roundTrip(t, client, "after three failures")
	if err := ls.Close(); err != nil {
		t.Fatal(err)
	}
	if n := h.served.Load(); n != 1 {
		t.Errorf("served %d conns, want 1", n)
	}
}

// TestTLSCertificateReload: a rotated key pair (for example a renewed
// Kubernetes Secret) is served to new handshakes without a restart; a
// broken rotation keeps the previous pair.
func TestTLSCertificateReload(t *testing.T) {
	pki := newTestPKI(t)
	r := &certReloader{certFile: pki.certFile, keyFile: pki.keyFile, log: testLogger(t)}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	first, err := r.getCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	next := newTestPKI(t)
	for _, f := range [][2]string{{next.certFile, pki.certFile}, {next.keyFile, pki.keyFile}} {
		b, err := os.ReadFile(f[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(f[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	r.mu.Lock()
	r.checkedAt = time.Time{} // the recheck interval has passed
	r.mu.Unlock()
	second, err := r.getCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(first.Certificate[0], second.Certificate[0]) {
		t.Fatal("rotated certificate not picked up")
	}
	if err := os.WriteFile(pki.keyFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.checkedAt = time.Time{}
	r.mu.Unlock()
	third, err := r.getCertificate(nil)
	if err != nil || !bytes.Equal(third.Certificate[0], second.Certificate[0]) {
		t.Errorf("a broken rotation replaced the certificate: %v", err)
	}
}
