package host

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// wsSubprotocols are the WebSocket subprotocols accepted, preferred first.
// [MQTT-6.0.0-3] clients must offer "mqtt"; some 3.1 clients offer
// "mqttv3.1".
var wsSubprotocols = []string{"mqtt", "mqttv3.1"}

// HTTP limits of the WebSocket handshake: a client that never finishes its
// upgrade request must not hold a connection forever.
const (
	wsReadHeaderTimeout = 10 * time.Second
	wsMaxHeaderBytes    = 16 << 10
)

// bindWebSocket binds an MQTT over WebSocket listener serving path.
func (s *ListenerSet) bindWebSocket(addr, path string) (*boundListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(path, &wsHandler{set: s})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: wsReadHeaderTimeout,
		// Hijacking the upgraded connection clears these deadlines; the
		// MQTT connection then runs under limits.connectTimeout and the
		// keep alive.
		ReadTimeout:    httpReadTimeout,
		IdleTimeout:    httpIdleTimeout,
		MaxHeaderBytes: wsMaxHeaderBytes,
		ErrorLog:       slogErrorLog(s.log, ListenerWebSocket),
	}
	bl := &boundListener{kind: ListenerWebSocket, ln: ln, close: srv.Close}
	bl.serve = func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("websocket listener stopped", "err", err)
		}
	}
	return bl, nil
}

// wsHandler upgrades a request to a WebSocket and hands the byte stream it
// carries to the ConnHandler. MQTT packets may span WebSocket frames and a
// frame may hold several packets: the net.Conn is a plain byte stream.
type wsHandler struct{ set *ListenerSet }

func (h *wsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !offersMQTTSubprotocol(r) {
		http.Error(w, `WebSocket subprotocol "mqtt" required`, http.StatusBadRequest)
		h.failed(r, errNoSubprotocol)
		return
	}
	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{
		Subprotocols: wsSubprotocols,
		// MQTT clients authenticate in CONNECT, not with ambient browser
		// credentials, so a cross-origin page gains nothing: accept any
		// Origin, as other MQTT brokers do.
		InsecureSkipVerify: true,
	})
	if err != nil {
		// Accept answered the request with an HTTP error.
		h.failed(r, fmt.Errorf("websocket upgrade: %w", err))
		return
	}
	// The request context ends when this handler returns, and ServeConn
	// may return before the connection ends: the connection gets a context
	// of its own, ended by closing the connection.
	nc := websocket.NetConn(context.WithoutCancel(r.Context()), c, websocket.MessageBinary)
	h.set.handler.ServeConn(nc)
}

// offersMQTTSubprotocol reports whether the client offered a subprotocol
// this listener speaks.
func offersMQTTSubprotocol(r *http.Request) bool {
	for _, v := range r.Header.Values("Sec-WebSocket-Protocol") {
		for p := range strings.SplitSeq(v, ",") {
			p = strings.TrimSpace(p)
			for _, want := range wsSubprotocols {
				if strings.EqualFold(p, want) {
					return true
				}
			}
		}
	}
	return false
}

var errNoSubprotocol = errors.New(`websocket upgrade: the client did not offer the subprotocol "mqtt"`)

// failed hands the ConnHandler the upgrade of r that failed with err (the
// client had its HTTP error already), as a connection whose first Read
// fails with err, as a TLS handshake that fails on the first Read does:
// the engine counts and logs it like one (a connection error,
// connect_failed, with the client's address).
func (h *wsHandler) failed(r *http.Request, err error) {
	remote, _ := netip.ParseAddrPort(r.RemoteAddr) // the server's own ip:port
	h.set.handler.ServeConn(&failedUpgrade{remote: net.TCPAddrFromAddrPort(remote), err: err})
}

// failedUpgrade is the connection of a WebSocket upgrade that failed.
type failedUpgrade struct {
	remote *net.TCPAddr
	err    error
}

func (c *failedUpgrade) Read([]byte) (int, error)         { return 0, c.err }
func (c *failedUpgrade) Write([]byte) (int, error)        { return 0, c.err }
func (c *failedUpgrade) Close() error                     { return nil }
func (c *failedUpgrade) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *failedUpgrade) RemoteAddr() net.Addr             { return c.remote }
func (c *failedUpgrade) SetDeadline(time.Time) error      { return nil }
func (c *failedUpgrade) SetReadDeadline(time.Time) error  { return nil }
func (c *failedUpgrade) SetWriteDeadline(time.Time) error { return nil }
