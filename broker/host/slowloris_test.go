package host

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
)

// closedWithin reads from c until it is closed and fails unless that
// happens within d (and not before min).
func closedWithin(t *testing.T, c net.Conn, minD, d time.Duration) {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(d + 2*time.Second))
	_, err := io.Copy(io.Discard, c)
	el := time.Since(start)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %v", el)
	}
	if el < minD || el > d {
		t.Fatalf("closed after %v, want between %v and %v", el, minD, d)
	}
}

func listenTestAdmin(t *testing.T) *AdminServer {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	a, err := ListenAdmin("127.0.0.1:0", h, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.srv.Close(); <-a.done })
	return a
}

// A client that sends its request header a byte at a time is cut off
// by ReadHeaderTimeout, and the endpoint keeps answering others.
func TestAdminSlowloris(t *testing.T) {
	a := listenTestAdmin(t)
	addr := a.Addr().String()
	slow, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	go func() {
		for _, b := range []byte("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ") {
			if _, err := slow.Write([]byte{b}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
		for {
			if _, err := slow.Write([]byte("a")); err != nil {
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
	}()
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	closedWithin(t, slow, adminReadHeaderTimeout-time.Second, adminReadHeaderTimeout+2*time.Second)
}

// Connections beyond maxAdminConns are closed at once instead of held.
func TestAdminConnectionCap(t *testing.T) {
	a := listenTestAdmin(t)
	addr := a.Addr().String()
	held := make([]net.Conn, 0, maxAdminConns)
	defer func() {
		for _, c := range held {
			_ = c.Close()
		}
	}()
	for range maxAdminConns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, c)
	}
	cl := a.ln.(*capListener)
	before := adminConnsRefused.Load()
	eventually(t, 5*time.Second, "all held connections accepted", func() bool { return cl.open.Load() == maxAdminConns })
	extra, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer extra.Close()
	closedWithin(t, extra, 0, time.Second)
	if adminConnsRefused.Load() == before {
		t.Error("refusal not counted")
	}
	for _, c := range held {
		_ = c.Close()
	}
	held = held[:0]
	eventually(t, 5*time.Second, "held connections released", func() bool { return cl.open.Load() == 0 })
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
}

// The WebSocket listener cuts off a slow upgrade request, and an upgraded
// connection that sends no CONNECT is closed after limits.connectTimeout.
func TestWebSocketSlowClients(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.ConnectTimeout = config.Duration(time.Second)
	e := startEngine(t, cfg)
	lcfg := listenersOnly("", "", "127.0.0.1:0")
	lcfg.Listeners.WebSocket.Path = "/mqtt"
	ls := startListeners(t, lcfg, e)
	addr := ls.Addr(ListenerWebSocket).String()

	t.Run("no CONNECT", func(t *testing.T) {
		ws, err := dialWS(t, "ws://"+addr+"/mqtt", "mqtt")
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		start := time.Now()
		_ = ws.SetReadDeadline(start.Add(5 * time.Second))
		_, err = ws.Read(make([]byte, 1))
		var ne net.Error
		if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
			t.Fatalf("idle WebSocket not closed: %v after %v", err, time.Since(start))
		}
		if el := time.Since(start); el > 3*time.Second {
			t.Fatalf("closed after %v, connectTimeout 1s", el)
		}
	})
	t.Run("slow upgrade", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte("GET /mqtt HTTP/1.1\r\nHost: x\r\n")); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, c, wsReadHeaderTimeout-time.Second, wsReadHeaderTimeout+2*time.Second)
	})
	// The broker still serves an honest client.
	ws, err := dialWS(t, "ws://"+addr+"/mqtt", "mqtt")
	if err != nil {
		t.Fatal(err)
	}
	defer ws.Close()
	if ack, ok := mqttConnect(t, ws, "honest").(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("honest client: %+v", ack)
	}
}

// A TLS client that never completes its handshake, or completes it and
// sends no CONNECT, is closed after limits.connectTimeout: the handshake
// runs in the first read, under the CONNECT deadline.
func TestTLSSlowClients(t *testing.T) {
	cfg := config.Default()
	cfg.Limits.ConnectTimeout = config.Duration(time.Second)
	e := startEngine(t, cfg)
	pki := newTestPKI(t)
	lcfg := listenersOnly("", "127.0.0.1:0", "")
	lcfg.Listeners.TLS.CertFile, lcfg.Listeners.TLS.KeyFile = pki.certFile, pki.keyFile
	ls := startListeners(t, lcfg, e)
	addr := ls.Addr(ListenerTLS).String()

	t.Run("no handshake", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closedWithin(t, c, 500*time.Millisecond, 3*time.Second)
	})
	t.Run("half a ClientHello", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01}); err != nil {
			t.Fatal(err)
		}
		closedWithin(t, c, 500*time.Millisecond, 3*time.Second)
	})
	t.Run("no CONNECT", func(t *testing.T) {
		c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		closedWithin(t, c, 0, 3*time.Second)
	})
}
