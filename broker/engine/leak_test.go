package engine

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
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/test/poll"
)

// waitGoroutines fails the test unless the process's goroutine count
// comes back to at most base within d: every goroutine a connection
// started (read loop, writer, commit waiters) must end with it.
func waitGoroutines(t testing.TB, base int, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n := runtime.NumGoroutine()
		if n <= base {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines leaked: %d running, baseline %d\n%s", n, base, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitServerGoroutinesGone fails the test unless, within d, no goroutine
// but the caller's runs code of this module outside its tests: what a
// server or connection started has ended. It reads the stacks rather
// than counting, as runtime.NumGoroutine is approximate while goroutines
// start and end (a fuzzing worker once read 1 with five running, and the
// count-based check failed on a harmless input).
func waitServerGoroutinesGone(t testing.TB, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		left := serverGoroutines()
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("goroutines leaked: %d still run the server's code\n%s", len(left), strings.Join(left, "\n\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// serverGoroutines returns the stacks of the goroutines other than the
// caller's with a frame in this module's non-test code.
func serverGoroutines() []string {
	buf := make([]byte, 1<<16)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	const module = "github.com/bollard-io/bollard/"
	var out []string
	for _, g := range strings.Split(string(buf), "\n\n")[1:] { // the first is the caller's
		// "goroutine N [state]:", then a function line and its file line per frame
		lines := strings.Split(g, "\n")
		for i := 1; i+1 < len(lines); i += 2 {
			fn := strings.TrimPrefix(lines[i], "created by ")
			if strings.HasPrefix(fn, module) && !strings.Contains(lines[i+1], "_test.go:") {
				out = append(out, g)
				break
			}
		}
	}
	return out
}

// settledGoroutines returns the goroutine count once it stopped moving
// (goroutines of earlier tests may still be ending).
func settledGoroutines() int {
	last := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(10 * time.Millisecond)
		n := runtime.NumGoroutine()
		if n == last {
			return n
		}
		last = n
	}
	return last
}

// gatedStore holds every Commit while the gate is closed, so tests can
// keep acknowledgements pending.
type gatedStore struct {
	store.Store
	mu      sync.Mutex
	open    chan struct{}
	waiting atomic.Int32 // commits held at the gate
	failOne atomic.Bool  // the next commit fails
	failAll atomic.Bool  // every commit fails
}

var errInjected = errors.New("server test: injected commit failure")

func newGatedStore(st store.Store) *gatedStore {
	g := &gatedStore{Store: st, open: make(chan struct{})}
	close(g.open)
	return g
}

// hold makes further commits wait until release.
func (g *gatedStore) hold() {
	g.mu.Lock()
	g.open = make(chan struct{})
	g.mu.Unlock()
}

func (g *gatedStore) release() {
	g.mu.Lock()
	select {
	case <-g.open:
	default:
		close(g.open)
	}
	g.mu.Unlock()
}

func (g *gatedStore) Commit(ctx context.Context, b *store.Batch) error {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	g.waiting.Add(1)
	<-open
	g.waiting.Add(-1)
	if g.failOne.CompareAndSwap(true, false) || g.failAll.Load() {
		return errInjected
	}
	return g.Store.Commit(ctx, b)
}

// Raw packet builders: the bad-input tests write bytes the codec refuses
// to encode.

// frame is a packet: first byte, Remaining Length, body.
func frame(hdr byte, body ...[]byte) []byte {
	b := bytes.Join(body, nil)
	out := []byte{hdr}
	n := len(b)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		out = append(out, d)
		if n == 0 {
			break
		}
	}
	return append(out, b...)
}

// mstr is an MQTT string or binary field: two byte length, bytes.
func mstr(s string) []byte { return append([]byte{byte(len(s) >> 8), byte(len(s))}, s...) }

// props is a 5.0 property block: its length, then the properties.
func props(p ...byte) []byte { return append([]byte{byte(len(p))}, p...) }

// connectBytes builds a CONNECT: protocol name, level, flags, keep alive
// 30, (5.0) properties, then the payload fields as given.
func connectBytes(name string, level, flags byte, prop []byte, payload ...[]byte) []byte {
	vh := append(mstr(name), level, flags, 0, 30)
	if level == packet.V5 {
		vh = append(vh, prop...)
	}
	return frame(0x10, append([][]byte{vh}, payload...)...)
}

// encode builds a valid packet with broker/packet.
func encode(t testing.TB, p packet.Packet, version byte) []byte {
	t.Helper()
	b, err := packet.Append(nil, p, version)
	if err != nil {
		t.Fatalf("encode %s: %v", p.Type(), err)
	}
	return b
}

func (c *rawClient) write(b []byte) {
	c.t.Helper()
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// expectSilentClose checks that the server closes the connection without
// sending anything.
func (c *rawClient) expectSilentClose() {
	c.t.Helper()
	p, err := c.tryRecv(5 * time.Second)
	if err == nil {
		c.t.Fatalf("expected the connection closed, got %s %+v", p.Type(), p)
	}
	if !isClosed(err) {
		c.t.Fatalf("expected the connection closed, got %v", err)
	}
}

// expectConnack checks for a CONNACK with rc followed by the close.
func (c *rawClient) expectConnack(rc packet.ReasonCode) {
	c.t.Helper()
	p, err := c.tryRecv(5 * time.Second)
	if err != nil {
		c.t.Fatalf("expected CONNACK 0x%02X, got %v", byte(rc), err)
	}
	ack, ok := p.(*packet.Connack)
	if !ok || ack.ReasonCode != rc || ack.SessionPresent {
		c.t.Fatalf("expected CONNACK 0x%02X, got %s %+v", byte(rc), p.Type(), p)
	}
	if rc != packet.Success {
		c.expectSilentClose()
	}
}

// expectKick checks that the server ends the connection with a DISCONNECT
// carrying rc (5.0) or by closing it (3.1.1 has no DISCONNECT from the
// server).
func (c *rawClient) expectKick(rc packet.ReasonCode) {
	c.t.Helper()
	if c.version < packet.V5 {
		c.expectSilentClose()
		return
	}
	p, err := c.tryRecv(5 * time.Second)
	if err != nil {
		c.t.Fatalf("expected DISCONNECT 0x%02X, got %v", byte(rc), err)
	}
	d, ok := p.(*packet.Disconnect)
	if !ok || d.ReasonCode != rc {
		c.t.Fatalf("expected DISCONNECT 0x%02X, got %s %+v", byte(rc), p.Type(), p)
	}
	c.expectSilentClose()
}

func isClosed(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "connection reset")
}

// TestServerGoroutinesSeesAServer: the stack-based check sees a running
// server's goroutines (so it can fail) and none once it drained.
func TestServerGoroutinesSeesAServer(t *testing.T) {
	srv := fuzzServer(t)
	c1, c2 := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.ServeConn(c2)
	}()
	poll.Wait(t, 5*time.Second, time.Millisecond, "a served connection's goroutines seen", func() bool {
		return len(serverGoroutines()) > 0
	})
	_ = c1.Close()
	<-done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	waitServerGoroutinesGone(t, 5*time.Second)
}
