package nodeagent

import (
	"errors"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy limits. A Service port accepts at most maxProxyConns connections
// at once (more are rejected and counted in ProxyStats.OverLimit), and a
// connection to an endpoint that is not accepted within proxyDialTimeout
// is given up (ProxyStats.DialFailed): endpoints are local processes, which
// accept or refuse at once.
const (
	defaultMaxProxyConns = 4096
	proxyDialTimeout     = time.Second
)

// ProxyStats counts what one Service port's proxy did.
type ProxyStats struct {
	// Accepted counts client connections accepted (whatever became of them).
	Accepted uint64
	// Forwarded counts connections joined to an endpoint.
	Forwarded uint64
	// NoEndpoints counts connections closed at once (with a reset) because
	// the Service had no usable endpoint, as kube-proxy's REJECT rule does.
	NoEndpoints uint64
	// DialFailed counts connections reset because the chosen endpoint
	// refused or did not answer (a dead pod behind a stale endpoint: with
	// kube-proxy the client's SYN would meet a reset too).
	DialFailed uint64
	// OverLimit counts connections reset because maxConns were open.
	OverLimit uint64
	// Active is the number of connections open now.
	Active int64
	// Endpoints is the number of endpoints new connections go to now.
	Endpoints int
}

// serviceProxy listens on one local address for one Service port and
// joins every accepted connection to one endpoint, chosen at random among
// the endpoints current at the time of the accept (kube-proxy's iptables
// mode picks at random too). Changing the endpoints affects only new
// connections: those in progress keep their endpoint until either side
// closes.
type serviceProxy struct {
	name     string
	portName string // the Service port's name; guarded by Agent.mu
	ln       net.Listener
	log      *slog.Logger
	maxConns int64

	endpoints atomic.Pointer[[]string]

	accepted, forwarded, noEndpoints, dialFailed, overLimit atomic.Uint64
	active                                                  atomic.Int64

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// newServiceProxy listens on addr; serve must be called to accept.
func newServiceProxy(name, addr string, maxConns int, log *slog.Logger) (*serviceProxy, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	if maxConns <= 0 {
		maxConns = defaultMaxProxyConns
	}
	p := &serviceProxy{name: name, ln: ln, log: log, maxConns: int64(maxConns), conns: map[net.Conn]struct{}{}}
	p.endpoints.Store(&[]string{})
	return p, nil
}

// Addr is the proxy's listen address.
func (p *serviceProxy) Addr() string { return p.ln.Addr().String() }

// setEndpoints replaces the endpoints new connections go to; it reports
// whether they changed.
func (p *serviceProxy) setEndpoints(eps []string) bool {
	c := append([]string(nil), eps...)
	old := p.endpoints.Swap(&c)
	return !slices.Equal(*old, c)
}

// Stats returns the proxy's counters.
func (p *serviceProxy) Stats() ProxyStats {
	return ProxyStats{
		Accepted: p.accepted.Load(), Forwarded: p.forwarded.Load(), NoEndpoints: p.noEndpoints.Load(),
		DialFailed: p.dialFailed.Load(), OverLimit: p.overLimit.Load(), Active: p.active.Load(),
		Endpoints: len(*p.endpoints.Load()),
	}
}

// start accepts connections in a goroutine until close.
func (p *serviceProxy) start() {
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		p.serve()
	}()
}

func (p *serviceProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of descriptors and the like: a short pause, as
			// net/http's server does, rather than a busy loop.
			p.log.Warn("service proxy: accept", "service", p.name, "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		p.accepted.Add(1)
		if !p.track(c, true) {
			reset(c)
			return
		}
		go p.handle(c)
	}
}

// track registers a connection for close; false once the proxy is closed.
// With handler, it counts the goroutine that will handle c (wg.Add before
// the goroutine starts, and never after close began waiting).
func (p *serviceProxy) track(c net.Conn, handler bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[c] = struct{}{}
	if handler {
		p.wg.Add(1)
	}
	return true
}

func (p *serviceProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// handle joins one client connection to an endpoint.
func (p *serviceProxy) handle(client net.Conn) {
	defer p.wg.Done()
	defer p.untrack(client)
	if p.active.Add(1) > p.maxConns {
		p.active.Add(-1)
		p.overLimit.Add(1)
		reset(client)
		return
	}
	defer p.active.Add(-1)
	eps := *p.endpoints.Load()
	if len(eps) == 0 {
		p.noEndpoints.Add(1)
		reset(client)
		return
	}
	ep := eps[rand.IntN(len(eps))]
	backend, err := net.DialTimeout("tcp", ep, proxyDialTimeout)
	if err != nil {
		p.dialFailed.Add(1)
		p.log.Debug("service proxy: endpoint refused", "service", p.name, "endpoint", ep, "err", err)
		reset(client)
		return
	}
	if !p.track(backend, false) {
		reset(backend)
		reset(client)
		return
	}
	defer p.untrack(backend)
	p.forwarded.Add(1)
	join(client, backend)
}

// join copies both ways until both directions ended. A direction that ends
// with EOF half-closes the other side (a client's FIN reaches the
// endpoint); one that ends with an error (a reset, a closed proxy) resets
// both sides, so that an endpoint that dies is seen as such by the client.
func join(a, b net.Conn) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		pipe(b, a)
	}()
	pipe(a, b)
	<-done
	a.Close()
	b.Close()
}

// pipe copies from src to dst; see join.
func pipe(dst, src net.Conn) {
	_, err := io.Copy(dst, src)
	if err != nil {
		reset(dst)
		reset(src)
		return
	}
	if cw, ok := dst.(interface{ CloseWrite() error }); ok {
		if cw.CloseWrite() == nil {
			return
		}
	}
	dst.Close()
}

// reset closes c with a TCP reset (SO_LINGER 0) rather than a FIN, as a
// REJECT rule or a dead peer would answer.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0) // best effort: the close below still happens
	}
	c.Close()
}

// close stops accepting, resets every connection in progress, and waits
// for their goroutines.
func (p *serviceProxy) close() {
	p.mu.Lock()
	p.closed = true
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	p.ln.Close()
	for _, c := range conns {
		reset(c)
	}
	p.wg.Wait()
}
