package host

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP limits of the admin endpoint and the WebSocket listener against
// slow clients (slowloris): a request's header must arrive within its
// ReadHeaderTimeout, the whole request within readTimeout, and a
// keep-alive connection idle for idleTimeout is closed.
const (
	httpReadTimeout = 10 * time.Second
	httpIdleTimeout = 30 * time.Second
	// maxAdminConns bounds the admin endpoint's open connections; more are
	// closed at once. Probes, scrapers and the operator need a handful.
	maxAdminConns = 256
)

// capListener closes accepted connections beyond max open ones, instead
// of queueing them (netutil.LimitListener blocks Accept): each held
// connection costs a goroutine and buffers, and slow clients must not be
// able to grow that without bound.
type capListener struct {
	net.Listener
	max     int64
	open    atomic.Int64
	refused *atomic.Uint64
}

// adminConnsRefused counts the admin connections closed by the cap, for
// bollard_admin_connections_refused_total. It is per process, not per
// engine: the admin endpoint serves the process (one per process outside
// tests).
var adminConnsRefused atomic.Uint64

func (l *capListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) > l.max {
			l.open.Add(-1)
			l.refused.Add(1)
			_ = c.Close()
			continue
		}
		return &cappedConn{Conn: c, l: l}, nil
	}
}

type cappedConn struct {
	net.Conn
	l    *capListener
	once sync.Once
}

func (c *cappedConn) Close() error {
	c.once.Do(func() { c.l.open.Add(-1) })
	return c.Conn.Close()
}
