package host

import (
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/lograte"
)

// Listener kinds, as named in the configuration (listeners.<kind>) and in logs.
const (
	ListenerMQTT      = "mqtt"
	ListenerTLS       = "tls"
	ListenerWebSocket = "websocket"
)

// Accept backoff bounds: a failing Accept (for example EMFILE, out of file
// descriptors) is retried after a delay that doubles from the minimum up to
// the maximum, so that a broker at its descriptor limit does not spin.
const (
	acceptBackoffMin = 5 * time.Millisecond
	acceptBackoffMax = time.Second
)

// ConnHandler serves one accepted client connection until it ends.
// *engine.Server implements it. ServeConn may block or return early; the
// listeners call it from a goroutine of its own for every connection. The
// connection is a plain byte stream (a TLS handshake runs on its first
// Read; a WebSocket's frames are unwrapped) and its Close may take seconds
// (a WebSocket's close handshake waits for the peer).
type ConnHandler interface {
	ServeConn(c net.Conn)
}

// ListenerSet owns the client-facing listeners (TCP, TLS, WebSocket): it
// binds them, runs their accept loops and closes them on shutdown. It does
// not own the accepted connections: those belong to the ConnHandler, which
// drains them.
type ListenerSet struct {
	log     *slog.Logger
	handler ConnHandler

	mu        sync.Mutex
	listeners []*boundListener
	serving   bool
	closed    bool

	done chan struct{} // closed by Close: stops accept backoff waits
	wg   sync.WaitGroup
}

// boundListener is one bound socket and how to serve it.
type boundListener struct {
	kind string
	ln   net.Listener
	// serve runs the accept loop until the listener is closed.
	serve func()
	// close stops the accept loop (and, for WebSocket, the HTTP server).
	close func() error
}

// Listen binds every listener enabled in cfg; it does not accept yet (call
// Serve once the server has recovered its state). On error, whatever was
// already bound is closed. The bound addresses, which differ from the
// configured ones for port 0, are available from Addr.
func Listen(cfg *config.Config, h ConnHandler, log *slog.Logger) (*ListenerSet, error) {
	if log == nil {
		log = slog.Default()
	}
	s := &ListenerSet{log: log, handler: h, done: make(chan struct{})}
	l := cfg.Listeners
	steps := []struct {
		kind, addr string
		bind       func(string) (*boundListener, error)
	}{
		{ListenerMQTT, l.MQTT.Address, s.bindTCP},
		{ListenerTLS, l.TLS.Address, func(a string) (*boundListener, error) { return s.bindTLS(a, l.TLS) }},
		{ListenerWebSocket, l.WebSocket.Address, func(a string) (*boundListener, error) {
			return s.bindWebSocket(a, l.WebSocket.Path)
		}},
	}
	for _, st := range steps {
		if st.addr == "" {
			continue
		}
		bl, err := st.bind(st.addr)
		if err != nil {
			_ = s.Close() // the bind error is the one to report
			return nil, fmt.Errorf("host: listener %s on %s: %w", st.kind, st.addr, err)
		}
		s.listeners = append(s.listeners, bl)
	}
	return s, nil
}

// Serve starts the accept loops. It returns at once; Close stops them.
func (s *ListenerSet) Serve() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.serving || s.closed {
		return
	}
	s.serving = true
	for _, bl := range s.listeners {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			bl.serve()
		}()
		s.log.Info("listening", "listener", bl.kind, "address", bl.ln.Addr().String())
	}
}

// Close stops accepting on every listener and waits for the accept loops
// to return. Connections already accepted are left to the ConnHandler.
// Close is idempotent.
func (s *ListenerSet) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.done)
	var errs []error
	for _, bl := range s.listeners {
		if err := bl.close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("host: closing listener %s: %w", bl.kind, err))
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return errors.Join(errs...)
}

// Addr returns the bound address of the listener of the given kind
// (ListenerMQTT, ListenerTLS, ListenerWebSocket), or nil if it is disabled.
func (s *ListenerSet) Addr(kind string) net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, bl := range s.listeners {
		if bl.kind == kind {
			return bl.ln.Addr()
		}
	}
	return nil
}

// Addrs returns the bound address of every enabled listener by kind.
func (s *ListenerSet) Addrs() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]string, len(s.listeners))
	for _, bl := range s.listeners {
		out[bl.kind] = bl.ln.Addr().String()
	}
	return out
}

// Kinds lists the enabled listener kinds in a stable order.
func (s *ListenerSet) Kinds() []string {
	addrs := s.Addrs()
	out := make([]string, 0, len(addrs))
	for k := range addrs {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// bindTCP binds a plain MQTT listener.
func (s *ListenerSet) bindTCP(addr string) (*boundListener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	return s.streamListener(ListenerMQTT, ln), nil
}

// streamListener wraps a listener whose accepted conns carry MQTT directly
// (TCP, or TLS, whose handshake runs on the connection's first Read inside
// ServeConn so that a slow client never blocks the accept loop).
func (s *ListenerSet) streamListener(kind string, ln net.Listener) *boundListener {
	bl := &boundListener{kind: kind, ln: ln, close: ln.Close}
	bl.serve = func() { s.acceptLoop(bl) }
	return bl
}

// acceptLoop accepts connections until the listener is closed, handing each
// to the ConnHandler on its own goroutine.
func (s *ListenerSet) acceptLoop(bl *boundListener) {
	var delay time.Duration
	for {
		c, err := bl.ln.Accept()
		if err == nil {
			delay = 0
			go s.handler.ServeConn(c)
			continue
		}
		if s.isClosed() || errors.Is(err, net.ErrClosed) {
			return
		}
		delay = nextAcceptBackoff(delay)
		s.log.Warn("accept failed; retrying", "listener", bl.kind, "err", err, "retryIn", delay)
		if !s.waitOrDone(delay) {
			return
		}
	}
}

// nextAcceptBackoff doubles d within [acceptBackoffMin, acceptBackoffMax].
func nextAcceptBackoff(d time.Duration) time.Duration {
	d *= 2
	if d < acceptBackoffMin {
		return acceptBackoffMin
	}
	return min(d, acceptBackoffMax)
}

// waitOrDone waits d, returning false early if the set is closed meanwhile.
func (s *ListenerSet) waitOrDone(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

func (s *ListenerSet) isClosed() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// slogErrorLog adapts log to the *log.Logger that net/http wants for its
// own errors (failed TLS handshakes, broken requests): warnings, at most
// one per httpErrorLogEvery with the number left out ("unlogged_before"),
// as anything that reaches the port can make them.
func slogErrorLog(log *slog.Logger, component string) *stdlog.Logger {
	return stdlog.New(&httpErrorLog{log: log.With("component", component), lim: lograte.Limiter{Every: httpErrorLogEvery}}, "", 0)
}

// httpErrorLogEvery is how often net/http's errors are logged at most, per
// server.
const httpErrorLogEvery = 10 * time.Second

type httpErrorLog struct {
	log *slog.Logger
	lim lograte.Limiter
}

func (l *httpErrorLog) Write(p []byte) (int, error) {
	if ok, skipped := l.lim.Allow("", time.Now()); ok {
		l.log.Warn(strings.TrimSpace(string(p)), "unlogged_before", skipped)
	}
	return len(p), nil
}
