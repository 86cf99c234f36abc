package faultproxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/faultproxy"
	"github.com/bollard-io/bollard/test/poll"
)

// server is a loopback TCP server for the tests: it echoes (optionally
// prefixing each connection's replies with a tag) or sinks what it reads.
type server struct {
	ln       net.Listener
	accepted atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	handle   func(net.Conn)
}

// echo starts a server that writes back what it reads, and half-closes
// when the client does.
func echo(t *testing.T) *server { return serve(t, echoConn) }

func echoConn(c net.Conn) {
	if _, err := io.Copy(c, c); err == nil {
		_ = c.(*net.TCPConn).CloseWrite() // the test reads to EOF
	}
}

// tagged starts an echo server that first writes tag on every connection.
func tagged(t *testing.T, tag string) *server {
	return serve(t, func(c net.Conn) {
		if _, err := c.Write([]byte(tag)); err == nil {
			echoConn(c)
		}
	})
}

func serve(t testing.TB, handle func(net.Conn)) *server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &server{ln: ln, conns: map[net.Conn]struct{}{}, handle: handle}
	s.wg.Add(1)
	go s.loop()
	t.Cleanup(s.close)
	return s
}

func (s *server) addr() string { return s.ln.Addr().String() }

func (s *server) loop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.accepted.Add(1)
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			s.handle(c)
			_ = c.Close()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}

func (s *server) close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// leakChecked holds the tests whose cleanup already checks for leaks.
var leakChecked sync.Map

// newProxy starts a proxy to target; cleanup closes it and, once every
// proxy of the test is closed, checks that no goroutine of the package is
// left.
func newProxy(t testing.TB, target string, opts ...faultproxy.Option) *faultproxy.Proxy {
	t.Helper()
	if _, seen := leakChecked.LoadOrStore(t, true); !seen {
		t.Cleanup(func() { noLeaks(t); leakChecked.Delete(t) }) // runs after the Close below
	}
	p, err := faultproxy.New("127.0.0.1:0", target, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Close(); err != nil {
			t.Error(err)
		}
	})
	return p
}

// noLeaks fails the test while a goroutine runs code of package
// faultproxy (the tests are package faultproxy_test, so their own
// goroutines do not count).
func noLeaks(t testing.TB) {
	t.Helper()
	var stacks []string
	leaked := func() bool {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		stacks = stacks[:0]
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "bollard/test/faultproxy.") {
				stacks = append(stacks, g)
			}
		}
		return len(stacks) == 0
	}
	if poll.Until(context.Background(), 5*time.Second, 5*time.Millisecond, poll.Bool(leaked)) != nil {
		t.Errorf("%d goroutines of faultproxy left after Close:\n%s", len(stacks), strings.Join(stacks, "\n\n"))
	}
}

func dial(t *testing.T, addr string) *net.TCPConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c.(*net.TCPConn)
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := c.Write([]byte(s)); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readN reads exactly n bytes within d.
func readN(t *testing.T, c net.Conn, n int, d time.Duration) string {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{}) //nolint:errcheck // reset of a deadline on a test conn
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read %d bytes: %v (got %q)", n, err, buf)
	}
	return string(buf)
}

// expectSilence checks that nothing arrives on c for d and the connection
// is still open (the read times out).
func expectSilence(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	defer c.SetReadDeadline(time.Time{}) //nolint:errcheck // reset of a deadline on a test conn
	buf := make([]byte, 64)
	n, err := c.Read(buf)
	var ne net.Error
	if n > 0 || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("want a read timeout and nothing read, got %q, %v", buf[:n], err)
	}
}

// expectClosed checks that c ends (EOF or reset) within d, reading
// nothing but what is allowed.
func expectClosed(t *testing.T, c net.Conn, d time.Duration) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(d))
	var got bytes.Buffer
	_, err := io.Copy(&got, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("connection still open after %s (read %q)", d, got.String())
	}
	if got.Len() > 0 {
		t.Fatalf("read %q from a connection that should end silently", got.String())
	}
}

// expectRefused dials addr and checks that the connection is reset or
// closed at once: either the dial itself sees the reset, or the
// connection ends with nothing read.
func expectRefused(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial %s: %v, want a connection or a reset", addr, err)
		}
		return
	}
	defer c.Close()
	expectClosed(t, c, 5*time.Second)
}
