package nodeagent

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/poll"
)

// backend is a test endpoint: it greets every connection with its name and
// a newline, then echoes what it reads.
type backend struct {
	name string
	ln   net.Listener
	wg   sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func startBackend(t *testing.T, name string) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, ln: ln}
	serveBackend(b)
	t.Cleanup(b.stop)
	return b
}

// serveBackend accepts b's connections until b.stop.
func serveBackend(b *backend) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for {
			c, err := b.ln.Accept()
			if err != nil {
				return
			}
			b.mu.Lock()
			b.conns = append(b.conns, c)
			b.mu.Unlock()
			b.wg.Add(1)
			go func() {
				defer b.wg.Done()
				defer c.Close()
				if _, err := fmt.Fprintf(c, "%s\n", b.name); err != nil {
					return
				}
				_, _ = io.Copy(c, c) // ends when the peer closes
			}()
		}
	}()
}

func (b *backend) addr() string { return b.ln.Addr().String() }

// stop closes the listener and every connection, as a process that dies.
func (b *backend) stop() {
	b.ln.Close()
	b.mu.Lock()
	for _, c := range b.conns {
		c.Close()
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func startProxy(t *testing.T, maxConns int, eps ...string) *serviceProxy {
	t.Helper()
	p, err := newServiceProxy("test/svc/1883", "127.0.0.1:0", maxConns, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	p.setEndpoints(eps)
	p.start()
	t.Cleanup(p.close)
	return p
}

// client is a connection through the proxy with a line reader.
type client struct {
	net.Conn
	r *bufio.Reader
}

func dialProxy(t *testing.T, p *serviceProxy) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &client{Conn: c, r: bufio.NewReader(c)}
}

// line reads one line (without the newline).
func (c *client) line() (string, error) {
	s, err := c.r.ReadString('\n')
	return strings.TrimSuffix(s, "\n"), err
}

// greeting is the name of the backend the connection reached.
func (c *client) greeting(t *testing.T) string {
	t.Helper()
	s, err := c.line()
	if err != nil {
		t.Fatalf("reading the greeting: %v", err)
	}
	return s
}

// echo checks that the connection still carries data both ways.
func (c *client) echo(t *testing.T, msg string) {
	t.Helper()
	if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
		t.Fatalf("writing %q: %v", msg, err)
	}
	got, err := c.line()
	if err != nil || got != msg {
		t.Fatalf("echo of %q: %q, %v", msg, got, err)
	}
}

// refused checks that the proxy refused a new connection: closed it
// without data, with a reset (seen by the dial itself, or by the first
// read as ECONNRESET, or EOF when the reset raced the read).
func refused(t *testing.T, p *serviceProxy) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
	if err != nil {
		if !isReset(err) {
			t.Fatalf("want a reset, got %v", err)
		}
		return
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	var b [1]byte
	_, err = conn.Read(b[:])
	if err == nil {
		t.Fatalf("read %q from a connection that should have been refused", b[0])
	}
	if !errors.Is(err, io.EOF) && !isReset(err) {
		t.Fatalf("want a reset or EOF, got %v", err)
	}
}

func isReset(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "connection reset") || strings.Contains(err.Error(), "broken pipe"))
}

func TestProxyForwardsBothWaysAndHalfCloses(t *testing.T) {
	b := startBackend(t, "a")
	p := startProxy(t, 0, b.addr())
	c := dialProxy(t, p)
	if g := c.greeting(t); g != "a" {
		t.Fatalf("reached %q, want a", g)
	}
	c.echo(t, "hello")
	// A FIN from the client reaches the backend, whose echo loop ends and
	// closes: the client then reads EOF, not a reset.
	if err := c.Conn.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.r.ReadByte(); !errors.Is(err, io.EOF) {
		t.Fatalf("after a half-close: want EOF, got %v", err)
	}
	poll.Wait(t, 5*time.Second, 10*time.Millisecond, "the connection to end", func() bool {
		return p.Stats().Active == 0
	})
	if s := p.Stats(); s.Accepted != 1 || s.Forwarded != 1 || s.NoEndpoints+s.DialFailed+s.OverLimit != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestProxyNoEndpointRejectsAtOnce(t *testing.T) {
	p := startProxy(t, 0)
	start := time.Now()
	refused(t, p)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("refused after %s, want at once", d)
	}
	if s := p.Stats(); s.NoEndpoints != 1 || s.Forwarded != 0 || s.Endpoints != 0 {
		t.Fatalf("stats %+v", s)
	}
}

// Connections in progress keep their endpoint when the endpoints change;
// each new one goes to the current set, and none is accepted into an
// empty set.
func TestProxyEndpointChanges(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	p := startProxy(t, 0, a.addr())
	first := dialProxy(t, p)
	if g := first.greeting(t); g != "a" {
		t.Fatalf("reached %q, want a", g)
	}
	p.setEndpoints([]string{b.addr()})
	for range 5 {
		if g := dialProxy(t, p).greeting(t); g != "b" {
			t.Fatalf("a new connection reached %q after the change to b", g)
		}
	}
	first.echo(t, "still a")
	p.setEndpoints(nil)
	refused(t, p)
	first.echo(t, "still a after b left too")
	p.setEndpoints([]string{a.addr(), b.addr()})
	seen := map[string]bool{}
	poll.Wait(t, 10*time.Second, time.Millisecond, "new connections to reach both endpoints", func() bool {
		seen[dialProxy(t, p).greeting(t)] = true
		return seen["a"] && seen["b"]
	})
	if s := p.Stats(); s.NoEndpoints != 1 || s.Endpoints != 2 {
		t.Fatalf("stats %+v", s)
	}
}

// An endpoint whose process died resets the connections sent to it; the
// connections it held end for their clients.
func TestProxyDeadEndpoint(t *testing.T) {
	b := startBackend(t, "a")
	p := startProxy(t, 0, b.addr())
	c := dialProxy(t, p)
	c.greeting(t)
	b.stop()
	if _, err := c.r.ReadByte(); err == nil {
		t.Fatal("the connection to a stopped endpoint still carries data")
	}
	refused(t, p)
	if s := p.Stats(); s.DialFailed != 1 {
		t.Fatalf("stats %+v, want 1 failed dial", s)
	}
}

func TestProxyConcurrentConnections(t *testing.T) {
	a, b := startBackend(t, "a"), startBackend(t, "b")
	p := startProxy(t, 0, a.addr(), b.addr())
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
			if err != nil {
				errs <- err
				return
			}
			defer c.Close()
			if err := c.SetDeadline(time.Now().Add(20 * time.Second)); err != nil {
				errs <- err
				return
			}
			r := bufio.NewReader(c)
			if _, err := r.ReadString('\n'); err != nil {
				errs <- fmt.Errorf("greeting: %w", err)
				return
			}
			for k := range 20 {
				msg := fmt.Sprintf("conn %d message %d %s", i, k, strings.Repeat("x", 1000))
				if _, err := fmt.Fprintf(c, "%s\n", msg); err != nil {
					errs <- err
					return
				}
				got, err := r.ReadString('\n')
				if err != nil || strings.TrimSuffix(got, "\n") != msg {
					errs <- fmt.Errorf("conn %d: echo %d mismatched (%w)", i, k, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	poll.Wait(t, 5*time.Second, 10*time.Millisecond, "every connection to end", func() bool {
		return p.Stats().Active == 0
	})
	if s := p.Stats(); s.Forwarded != n {
		t.Fatalf("stats %+v, want %d forwarded", s, n)
	}
}

func TestProxyConnectionLimit(t *testing.T) {
	b := startBackend(t, "a")
	p := startProxy(t, 2, b.addr())
	held := []*client{dialProxy(t, p), dialProxy(t, p)}
	for _, c := range held {
		c.greeting(t)
	}
	refused(t, p)
	if s := p.Stats(); s.OverLimit != 1 || s.Active != 2 {
		t.Fatalf("stats %+v", s)
	}
	held[0].Close()
	poll.Wait(t, 5*time.Second, 10*time.Millisecond, "a slot to free", func() bool {
		return p.Stats().Active < 2
	})
	if g := dialProxy(t, p).greeting(t); g != "a" {
		t.Fatalf("reached %q", g)
	}
}

// close resets the connections in progress and returns once they ended.
func TestProxyCloseEndsConnections(t *testing.T) {
	b := startBackend(t, "a")
	p := startProxy(t, 0, b.addr())
	c := dialProxy(t, p)
	c.greeting(t)
	p.close()
	if _, err := c.r.ReadByte(); err == nil {
		t.Fatal("a connection outlived its proxy")
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("a closed proxy still accepts")
	}
	if s := p.Stats(); s.Active != 0 {
		t.Fatalf("stats %+v", s)
	}
}
