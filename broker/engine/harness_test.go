package engine

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/test/poll"
)

// fakeClock is an injectable wall clock for expiry tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testConfig is the default configuration for loopback tests.
func testConfig() *config.Config {
	c := config.Default()
	c.Durability.Mode = config.DurabilityNone
	c.DataDir = ""
	return c
}

// testBroker is a Server listening on 127.0.0.1:0.
type testBroker struct {
	t     testing.TB
	srv   *Server
	st    store.Store
	clock *fakeClock
	ln    net.Listener
	addr  string
	wg    sync.WaitGroup
	once  sync.Once
}

type brokerOpt func(*testBroker)

func withStore(st store.Store) brokerOpt { return func(b *testBroker) { b.st = st } }
func withClock(c *fakeClock) brokerOpt   { return func(b *testBroker) { b.clock = c } }

func startBroker(t testing.TB, cfg *config.Config, opts ...brokerOpt) *testBroker {
	t.Helper()
	return startBrokerWith(t, cfg, nil, opts...)
}

// startBrokerWith starts a broker with extra server options (srvOpt may
// be nil).
func startBrokerWith(t testing.TB, cfg *config.Config, srvOpt Option, opts ...brokerOpt) *testBroker {
	t.Helper()
	b := &testBroker{t: t}
	for _, o := range opts {
		o(b)
	}
	if b.st == nil {
		b.st = memstore.New()
	}
	if b.clock == nil {
		b.clock = newFakeClock()
	}
	if cfg == nil {
		cfg = testConfig()
	}
	sopts := []Option{WithLogger(testLogger(t)), WithClock(b.clock.Now)}
	if srvOpt != nil {
		sopts = append(sopts, srvOpt)
	}
	srv, err := New(cfg, b.st, sopts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.srv, b.ln, b.addr = srv, ln, ln.Addr().String()
	b.wg.Add(1)
	go b.accept()
	t.Cleanup(b.stop)
	return b
}

func (b *testBroker) accept() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			b.srv.ServeConn(c)
		}()
	}
}

// stop drains the server; the store stays open (restart tests reuse it).
func (b *testBroker) stop() {
	b.once.Do(func() {
		_ = b.ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.srv.Drain(ctx); err != nil {
			b.t.Errorf("drain: %v", err)
		}
		b.wg.Wait()
	})
}

// listenWith accepts connections on a loopback listener of its own and
// hands each to serve on a goroutine; it returns the listener's address.
// The test's cleanup closes the listener and waits for every serve.
func listenWith(t testing.TB, serve func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { serve(nc) })
		}
	})
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// testLogger logs warnings and errors to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(p))
	return len(p), nil
}

// eventually polls cond every 5ms until it holds, failing the test when
// d passes first.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	poll.Wait(t, d, 5*time.Millisecond, what, cond)
}

// rawClient speaks MQTT through broker/packet, for tests that need exact
// control over every packet.
type rawClient struct {
	t       testing.TB
	nc      net.Conn
	r       *packet.Reader
	version byte
}

func dialRaw(t testing.TB, addr string, version byte) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	return &rawClient{t: t, nc: nc, r: packet.NewReader(bufio.NewReader(nc), version, 0), version: version}
}

func (c *rawClient) send(p packet.Packet) {
	c.t.Helper()
	if err := packet.Write(c.nc, p, c.version); err != nil {
		c.t.Fatalf("send %s: %v", p.Type(), err)
	}
}

// recv reads the next packet or fails the test after 5 s.
func (c *rawClient) recv() packet.Packet {
	c.t.Helper()
	p, err := c.tryRecv(5 * time.Second)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	return p
}

func (c *rawClient) tryRecv(d time.Duration) (packet.Packet, error) {
	_ = c.nc.SetReadDeadline(time.Now().Add(d))
	return c.r.ReadPacket()
}

// expectNothing checks that no packet arrives within d.
func (c *rawClient) expectNothing(d time.Duration) {
	c.t.Helper()
	p, err := c.tryRecv(d)
	var ne net.Error
	if err == nil {
		c.t.Fatalf("unexpected %s: %+v", p.Type(), p)
	}
	if !errors.As(err, &ne) || !ne.Timeout() {
		c.t.Fatalf("expected silence, got %v", err)
	}
	// A timed-out read may have consumed part of a packet; tests call
	// expectNothing only where nothing may be in flight.
}

// expectClosed reads until the server closes the connection and returns
// the DISCONNECT it sent, if any.
func (c *rawClient) expectClosed() *packet.Disconnect {
	c.t.Helper()
	var d *packet.Disconnect
	for {
		p, err := c.tryRecv(5 * time.Second)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				c.t.Fatal("connection not closed")
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !errors.Is(err, io.ErrUnexpectedEOF) {
				c.t.Logf("read after close: %v", err)
			}
			return d
		}
		if dp, ok := p.(*packet.Disconnect); ok {
			d = dp
		}
	}
}

func (c *rawClient) connect(p *packet.Connect) *packet.Connack {
	c.t.Helper()
	p.ProtocolVersion = c.version
	c.send(p)
	ack, ok := c.recv().(*packet.Connack)
	if !ok {
		c.t.Fatal("expected CONNACK")
	}
	return ack
}

func (c *rawClient) subscribe(pid uint16, id uint32, subs ...packet.Subscription) *packet.Suback {
	c.t.Helper()
	s := &packet.Subscribe{PacketID: pid, Subscriptions: subs}
	if id != 0 {
		s.Properties.SubscriptionIdentifiers = []uint32{id}
	}
	c.send(s)
	ack, ok := c.recv().(*packet.Suback)
	if !ok || ack.PacketID != pid {
		c.t.Fatalf("expected SUBACK %d, got %+v", pid, ack)
	}
	return ack
}

// recvPublish reads the next packet, which must be a PUBLISH.
func (c *rawClient) recvPublish() *packet.Publish {
	c.t.Helper()
	p := c.recv()
	pub, ok := p.(*packet.Publish)
	if !ok {
		c.t.Fatalf("expected PUBLISH, got %s %+v", p.Type(), p)
	}
	return pub
}

func u32(v uint32) *uint32 { return &v }
func u16(v uint16) *uint16 { return &v }
