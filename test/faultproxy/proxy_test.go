package faultproxy_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/faultproxy"
	"github.com/bollard-io/bollard/test/poll"
)

func TestForwardsAndCounts(t *testing.T) {
	srv := echo(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	write(t, c, "hello")
	if got := readN(t, c, 5, 5*time.Second); got != "hello" {
		t.Fatalf("echo = %q", got)
	}
	// The client's FIN reaches the server, whose FIN comes back.
	if err := c.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	expectClosed(t, c, 5*time.Second)
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the connection to end", func() bool { return p.Stats().Open == 0 })
	want := faultproxy.Stats{Accepted: 1, Forwarded: 1, BytesToTarget: 5, BytesToClient: 5, MaxQueued: p.Stats().MaxQueued}
	if got := p.Stats(); got != want {
		t.Fatalf("stats = %+v, want %+v", got, want)
	}
	if got := p.Stats().MaxQueued; got < 5 {
		t.Fatalf("MaxQueued = %d, want at least the 5 bytes queued", got)
	}
}

func TestRefusesNonLoopbackAddresses(t *testing.T) {
	srv := echo(t)
	bad := []string{
		"", ":0", "0.0.0.0:0", "[::]:0", "10.0.0.1:1883", "192.168.1.1:80", "8.8.8.8:53",
		"localhost:1883", "example.com:80", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000", "[fe80::1]:80",
	}
	for _, a := range bad {
		t.Run("listen "+a, func(t *testing.T) {
			if p, err := faultproxy.New(a, srv.addr()); err == nil {
				_ = p.Close()
				t.Fatalf("New listened on %q", a)
			}
		})
		t.Run("target "+a, func(t *testing.T) {
			if p, err := faultproxy.New("127.0.0.1:0", a); err == nil {
				_ = p.Close()
				t.Fatalf("New accepted target %q", a)
			}
		})
	}
	p := newProxy(t, srv.addr())
	for _, a := range append(bad, "127.0.0.1:0") {
		if err := p.SetTarget(a); err == nil {
			t.Errorf("SetTarget accepted %q", a)
		}
	}
	if got := p.Target(); got != srv.addr() {
		t.Fatalf("target changed to %q by refused SetTarget calls", got)
	}
	// Loopback literals other than 127.0.0.1 are loopback too.
	if err := p.SetTarget("127.0.0.2:1883"); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesBadSettings(t *testing.T) {
	srv := echo(t)
	for name, o := range map[string]faultproxy.Option{
		"chunk 0":              faultproxy.WithChunkSize(0),
		"queue below a chunk":  faultproxy.WithMaxQueued(faultproxy.DefaultChunkSize - 1),
		"queue above 1 GiB":    faultproxy.WithMaxQueued(2 << 30),
		"no connections":       faultproxy.WithMaxConns(0),
		"negative dial budget": faultproxy.WithDialTimeout(-time.Second),
	} {
		t.Run(name, func(t *testing.T) {
			if p, err := faultproxy.New("127.0.0.1:0", srv.addr(), o); err == nil {
				_ = p.Close()
				t.Fatal("New accepted it")
			}
		})
	}
	p := newProxy(t, srv.addr())
	if err := p.SetDelay(-time.Millisecond); err == nil {
		t.Error("SetDelay accepted a negative delay")
	}
	for _, prob := range []float64{-0.1, 1.5, nan()} {
		if err := p.SetDropConnections(prob); err == nil {
			t.Errorf("SetDropConnections accepted %v", prob)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("Partition accepted an unknown mode")
		}
	}()
	p.Partition(faultproxy.Mode(0))
}

func nan() float64 { zero := 0.0; return zero / zero }

// Every chunk is delayed one way by d in each direction, in order, and
// chunks overlap: 100 round trips written back to back take about one
// round trip, not 100.
func TestDelayKeepsOrderWithoutThrottling(t *testing.T) {
	srv := echo(t)
	p := newProxy(t, srv.addr())
	const d = 100 * time.Millisecond
	if err := p.SetDelay(d); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	c.SetNoDelay(true) //nolint:errcheck // loopback default
	var want strings.Builder
	start := time.Now()
	for i := range 100 {
		s := fmt.Sprintf("<%03d>", i)
		want.WriteString(s)
		write(t, c, s)
	}
	got := readN(t, c, want.Len(), 10*time.Second)
	took := time.Since(start)
	if got != want.String() {
		t.Fatalf("order broken:\n got %s\nwant %s", got, want.String())
	}
	if took < 2*d {
		t.Fatalf("round trip took %s, less than twice the one-way delay %s", took, d)
	}
	// A proxy that slept per chunk would need 100 x 2 x d = 20s.
	if took > 5*time.Second {
		t.Fatalf("100 overlapping round trips took %s: the delay throttles", took)
	}
}

// A chunk read after the delay shrinks still waits for the ones before.
func TestDelayShrinkKeepsOrder(t *testing.T) {
	srv := echo(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	if err := p.SetDelay(300 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	write(t, c, "first.")
	// The first chunk is stamped when the proxy reads it: wait until it
	// has been queued before shrinking the delay.
	poll.Wait(t, 5*time.Second, time.Millisecond, "the first chunk queued", func() bool { return p.Stats().MaxQueued > 0 })
	if err := p.SetDelay(0); err != nil {
		t.Fatal(err)
	}
	write(t, c, "second")
	if got := readN(t, c, 12, 5*time.Second); got != "first.second" {
		t.Fatalf("got %q, want first.second", got)
	}
}

func TestBlackhole(t *testing.T) {
	srv := tagged(t, "T")
	p := newProxy(t, srv.addr())
	old := dial(t, p.Addr())
	idle := dial(t, p.Addr())
	for _, c := range []net.Conn{old, idle} {
		write(t, c, "a")
		if got := readN(t, c, 2, 5*time.Second); got != "Ta" {
			t.Fatalf("before the partition: %q", got)
		}
	}

	p.Partition(faultproxy.Blackhole)
	if p.Mode() != faultproxy.Blackhole {
		t.Fatalf("mode = %s", p.Mode())
	}
	write(t, old, "lost") // writes succeed: the peer is just silent
	expectSilence(t, old, 300*time.Millisecond)
	accepted := srv.accepted.Load()
	fresh := dial(t, p.Addr()) // the handshake completes, nothing more
	write(t, fresh, "hello?")
	expectSilence(t, fresh, 300*time.Millisecond)
	if n := srv.accepted.Load(); n != accepted {
		t.Fatalf("the target saw %d new connections during the partition", n-accepted)
	}
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the discarded bytes counted", func() bool {
		return p.Stats().DiscardedToTarget == int64(len("lost")+len("hello?"))
	})

	p.Heal()
	// Connections that lost bytes, or were never forwarded, are closed.
	expectClosed(t, old, 5*time.Second)
	expectClosed(t, fresh, 5*time.Second)
	// One that lost nothing goes on.
	write(t, idle, "b")
	if got := readN(t, idle, 1, 5*time.Second); got != "b" {
		t.Fatalf("idle connection after heal: %q", got)
	}
	// New connections flow.
	c := dial(t, p.Addr())
	write(t, c, "c")
	if got := readN(t, c, 2, 5*time.Second); got != "Tc" {
		t.Fatalf("after heal: %q", got)
	}
	// A chunk is counted once its write returned, which may be after the
	// client read it.
	want := int64(len("TaTab") + len("Tc"))
	if err := poll.Until(context.Background(), 5*time.Second, 5*time.Millisecond, poll.Bool(func() bool {
		return p.Stats().BytesToClient == want
	})); err != nil {
		s := p.Stats()
		t.Fatalf("forwarded to clients %d bytes, want %d; stats %+v", s.BytesToClient, want, s)
	}
}

// The server's FIN during a blackhole is lost too: the client sees
// nothing until the heal closes the connection.
func TestBlackholeSwallowsFIN(t *testing.T) {
	srv := echo(t)
	p := newProxy(t, srv.addr())
	c := dial(t, p.Addr())
	write(t, c, "x")
	readN(t, c, 1, 5*time.Second)
	p.Partition(faultproxy.Blackhole)
	srv.close() // the server hangs up
	expectSilence(t, c, 300*time.Millisecond)
	p.Heal()
	expectClosed(t, c, 5*time.Second)
}

func TestReset(t *testing.T) {
	srv := echo(t)
	p := newProxy(t, srv.addr())
	old := dial(t, p.Addr())
	write(t, old, "a")
	readN(t, old, 1, 5*time.Second)

	p.Partition(faultproxy.Reset)
	expectClosed(t, old, 5*time.Second)
	accepted := srv.accepted.Load()
	for range 3 {
		expectRefused(t, p.Addr())
	}
	if n := srv.accepted.Load(); n != accepted {
		t.Fatalf("the target saw %d connections while reset", n-accepted)
	}
	if s := p.Stats(); s.Refused != 3 {
		t.Fatalf("refused %d, want 3", s.Refused)
	}

	p.Heal()
	c := dial(t, p.Addr())
	write(t, c, "b")
	if got := readN(t, c, 1, 5*time.Second); got != "b" {
		t.Fatalf("after heal: %q", got)
	}
}

// dropPattern opens n connections one after another and reports which
// the proxy reset (x) and which it forwarded (.).
func dropPattern(t *testing.T, seed uint64, prob float64, n int) string {
	t.Helper()
	srv := echo(t)
	p := newProxy(t, srv.addr(), faultproxy.WithSeed(seed))
	if err := p.SetDropConnections(prob); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for range n {
		c, err := net.DialTimeout("tcp", p.Addr(), 5*time.Second)
		if err != nil { // reset before connect returned
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatal(err)
			}
			b.WriteByte('x')
			continue
		}
		if _, err := c.Write([]byte("?")); err != nil {
			_ = c.Close()
			b.WriteByte('x')
			continue
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 1)
		if _, err := io.ReadFull(c, buf); err != nil {
			b.WriteByte('x')
		} else {
			b.WriteByte('.')
		}
		_ = c.Close()
	}
	if got := p.Stats().Dropped; got != int64(strings.Count(b.String(), "x")) {
		t.Fatalf("Dropped = %d, pattern %s", got, b.String())
	}
	return b.String()
}

func TestDropConnectionsIsSeeded(t *testing.T) {
	if got := dropPattern(t, 1, 0, 10); got != strings.Repeat(".", 10) {
		t.Fatalf("probability 0 dropped: %s", got)
	}
	if got := dropPattern(t, 1, 1, 10); got != strings.Repeat("x", 10) {
		t.Fatalf("probability 1 kept: %s", got)
	}
	a := dropPattern(t, 42, 0.5, 24)
	if b := dropPattern(t, 42, 0.5, 24); a != b {
		t.Fatalf("same seed, different drops:\n%s\n%s", a, b)
	}
	if !strings.Contains(a, "x") || !strings.Contains(a, ".") {
		t.Fatalf("probability 0.5 over 24 connections: %s", a)
	}
	if c := dropPattern(t, 43, 0.5, 24); c == a {
		t.Fatalf("seeds 42 and 43 drop the same connections: %s", a)
	}
}

func TestSetTarget(t *testing.T) {
	one, two := tagged(t, "1"), tagged(t, "2")
	p := newProxy(t, one.addr())
	old := dial(t, p.Addr())
	if got := readN(t, old, 1, 5*time.Second); got != "1" {
		t.Fatalf("first target: %q", got)
	}
	if err := p.SetTarget(two.addr()); err != nil {
		t.Fatal(err)
	}
	c := dial(t, p.Addr())
	if got := readN(t, c, 1, 5*time.Second); got != "2" {
		t.Fatalf("new target: %q", got)
	}
	write(t, old, "x") // the old connection keeps its target
	if got := readN(t, old, 1, 5*time.Second); got != "x" {
		t.Fatalf("old connection: %q", got)
	}
}

func TestDialFailureResets(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := ln.Addr().String()
	_ = ln.Close() // nothing listens there now
	p := newProxy(t, gone)
	expectRefused(t, p.Addr())
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the failed dial counted", func() bool { return p.Stats().DialFailed == 1 })
}

func TestMaxConnections(t *testing.T) {
	srv := echo(t)
	p := newProxy(t, srv.addr(), faultproxy.WithMaxConns(2))
	for range 2 {
		c := dial(t, p.Addr())
		write(t, c, "k")
		readN(t, c, 1, 5*time.Second)
	}
	expectRefused(t, p.Addr())
	if s := p.Stats(); s.Rejected != 1 || s.Open != 2 {
		t.Fatalf("stats %+v, want 1 rejected and 2 open", s)
	}
}

// The bytes waiting in one direction never exceed WithMaxQueued: with a
// delay, the proxy stops reading when the queue is full, and still
// delivers everything intact.
func TestMaxQueuedBoundsTheDelayQueue(t *testing.T) {
	const chunk, limit, total = 16 << 10, 64 << 10, 1 << 20
	var got sync.Map
	srv := serve(t, func(c net.Conn) {
		h := sha256.New()
		n, _ := io.Copy(h, c)
		got.Store("n", n)
		got.Store("sum", h.Sum(nil))
	})
	p := newProxy(t, srv.addr(), faultproxy.WithChunkSize(chunk), faultproxy.WithMaxQueued(limit))
	if err := p.SetDelay(30 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	data := make([]byte, total)
	_, _ = rand.Read(data)
	c := dial(t, p.Addr())
	if _, err := c.Write(data); err != nil {
		t.Fatal(err)
	}
	_ = c.CloseWrite()
	poll.Wait(t, 30*time.Second, 10*time.Millisecond, "the sink to read everything", func() bool {
		_, ok := got.Load("sum")
		return ok
	})
	want := sha256.Sum256(data)
	n, _ := got.Load("n")
	sum, _ := got.Load("sum")
	if n.(int64) != total || !bytes.Equal(sum.([]byte), want[:]) {
		t.Fatalf("sink read %d bytes, checksum match %v", n, bytes.Equal(sum.([]byte), want[:]))
	}
	if q := p.Stats().MaxQueued; q > limit || q < limit/2 {
		t.Fatalf("MaxQueued = %d, want the queue filled up to at most %d", q, limit)
	}
}

// Bulk data arrives intact both ways, with and without a delay.
func TestBulkIntegrity(t *testing.T) {
	for _, d := range []time.Duration{0, 5 * time.Millisecond} {
		t.Run(d.String(), func(t *testing.T) {
			srv := echo(t)
			p := newProxy(t, srv.addr())
			if err := p.SetDelay(d); err != nil {
				t.Fatal(err)
			}
			data := make([]byte, 16<<20)
			_, _ = rand.Read(data)
			c := dial(t, p.Addr())
			errc := make(chan error, 1)
			go func() {
				_, err := c.Write(data)
				errc <- errorsJoin(err, c.CloseWrite())
			}()
			_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
			back, err := io.ReadAll(c)
			if err != nil {
				t.Fatal(err)
			}
			if err := <-errc; err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, data) {
				t.Fatalf("echoed %d bytes, not the %d written", len(back), len(data))
			}
			if s := p.Stats(); s.BytesToTarget != int64(len(data)) || s.BytesToClient != int64(len(data)) {
				t.Fatalf("stats %+v", s)
			}
		})
	}
}

func errorsJoin(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Close ends every connection, including one accepted during a blackhole
// and one whose dial hangs, and leaves no goroutine behind (newProxy's
// cleanup checks).
func TestCloseEndsEverything(t *testing.T) {
	srv := echo(t)
	p, err := faultproxy.New("127.0.0.1:0", srv.addr())
	if err != nil {
		t.Fatal(err)
	}
	live := dial(t, p.Addr())
	write(t, live, "a")
	readN(t, live, 1, 5*time.Second)
	p.Partition(faultproxy.Blackhole)
	orphan := dial(t, p.Addr())
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "two open connections", func() bool { return p.Stats().Open == 2 })
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	expectClosed(t, live, 5*time.Second)
	expectClosed(t, orphan, 5*time.Second)
	noLeaks(t)
	if c, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		_ = c.Close()
		t.Fatal("the listener still accepts after Close")
	}
}
