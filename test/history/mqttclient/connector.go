package mqttclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

// Defaults of the configurations.
const (
	DefaultMaxRedirects   = 4
	DefaultBackoff        = 50 * time.Millisecond
	DefaultPublishTimeout = 10 * time.Second
)

// Reason codes of server redirection (MQTT 5.0, 4.11).
const (
	useAnotherServer = 0x9C
	serverMoved      = 0x9D
)

func isRedirect(code byte) bool { return code == useAnotherServer || code == serverMoved }

// ConnStats counts a client's connection attempts.
type ConnStats struct {
	Connects          int // connections established
	ConnectFailures   int // rounds through the address list that ended without one
	Redirects         int // Server References followed
	RefusedReferences int // Server References not followed (not loopback, malformed)
	SpansDropped      int // connections not kept in Spans (past MaxSpans)
}

// Span is one connection a client held: where, from when to when, and how
// it ended. The gap between a span's Down and the next span's Up is how
// long the client was without a connection.
type Span struct {
	Addr string
	// Up is when the CONNACK arrived; Down when the client saw the
	// connection end (zero while it lasts).
	Up, Down time.Time
	// ByClient: the client ended it (Offline, Close, the end of Run, a
	// publish that timed out), rather than the server or the network. A
	// span with a server DISCONNECT is never ByClient: the server ended
	// it, whichever side the client saw close first (paho reports the
	// DISCONNECT from a goroutine of its own, before or after).
	ByClient bool
	// ServerDisconnect: the server sent DISCONNECT with ReasonCode (and
	// ServerReference, if any).
	ServerDisconnect bool
	ReasonCode       byte
	ServerReference  string
}

// MaxSpans bounds the spans a client keeps; more are counted in
// ConnStats.SpansDropped.
const MaxSpans = 100_000

// dialFunc connects to addr; onDisconnect, when set, must see the
// DISCONNECT the server may send on that connection.
type dialFunc func(ctx context.Context, addr string, onDisconnect func(*paho.Disconnect)) (*paho.Client, *paho.Connack, error)

// connector connects through an address list, following redirections.
type connector struct {
	addrs        []string
	maxRedirects int

	mu       sync.Mutex
	last     string // address of the last connection, tried first
	redirect string // from a server DISCONNECT, tried first on the next connect
	next     int    // rotation of addrs
	stats    ConnStats
	cur      string // address of the current connection; "" when none
	spans    []Span
	open     int // index of the span of the current connection; -1: none
}

func newConnector(addrs []string, maxRedirects int) (*connector, error) {
	if len(addrs) == 0 {
		return nil, errors.New("mqttclient: no address")
	}
	if maxRedirects < 0 {
		return nil, fmt.Errorf("mqttclient: max redirects %d", maxRedirects)
	}
	if maxRedirects == 0 {
		maxRedirects = DefaultMaxRedirects
	}
	return &connector{addrs: addrs, maxRedirects: maxRedirects, open: -1}, nil
}

// Spans returns a copy of the connections held so far.
func (c *connector) Spans() []Span {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.spans)
}

// Addr is the address of the current connection ("" when none).
func (c *connector) Addr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur
}

// spanRef ties a connection attempt to its span: paho reports a server
// DISCONNECT from a goroutine of its own, which may run before the span
// is opened or after the client saw the connection end. Guarded by the
// connector's mu.
type spanRef struct {
	idx     int              // -1 until opened (and past MaxSpans)
	pending *paho.Disconnect // a DISCONNECT seen before the span opened
}

// opened starts the span of a new connection.
func (c *connector) opened(addr string, ref *spanRef) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(false)
	c.cur = addr
	if len(c.spans) >= MaxSpans {
		c.stats.SpansDropped++
		return
	}
	c.spans = append(c.spans, Span{Addr: addr, Up: time.Now()})
	c.open = len(c.spans) - 1
	ref.idx = c.open
	if ref.pending != nil {
		c.recordLocked(ref.idx, ref.pending)
	}
}

// ended closes the span of the current connection, if any.
func (c *connector) ended(byClient bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeLocked(byClient)
}

func (c *connector) closeLocked(byClient bool) {
	c.cur = ""
	if c.open < 0 {
		return
	}
	sp := &c.spans[c.open]
	sp.Down, sp.ByClient = time.Now(), byClient && !sp.ServerDisconnect
	c.open = -1
}

// disconnected records a server DISCONNECT on the span of ref.
func (c *connector) disconnected(ref *spanRef, d *paho.Disconnect) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ref.idx < 0 {
		ref.pending = d
		return
	}
	c.recordLocked(ref.idx, d)
}

func (c *connector) recordLocked(i int, d *paho.Disconnect) {
	sp := &c.spans[i]
	sp.ServerDisconnect, sp.ReasonCode, sp.ByClient = true, d.ReasonCode, false
	if d.Properties != nil {
		sp.ServerReference = d.Properties.ServerReference
	}
}

func (c *connector) Stats() ConnStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stats
}

// candidates is one round: a pending redirect, the last good address,
// then the list from a rotating start.
func (c *connector) candidates() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]string, 0, len(c.addrs)+2)
	add := func(a string) {
		if a != "" && !contains(out, a) {
			out = append(out, a)
		}
	}
	add(c.redirect)
	c.redirect = ""
	add(c.last)
	for i := range c.addrs {
		add(c.addrs[(c.next+i)%len(c.addrs)])
	}
	c.next = (c.next + 1) % len(c.addrs)
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// connect makes one round through the candidates. A connection it
// returns has a span open until ended.
func (c *connector) connect(ctx context.Context, dial dialFunc) (*paho.Client, *paho.Connack, error) {
	var errs []error
	for _, addr := range c.candidates() {
		// The span's index is known only once connected; a DISCONNECT
		// cannot come before.
		ref := &spanRef{idx: -1}
		onDisconnect := func(d *paho.Disconnect) {
			c.serverDisconnect(d)
			c.disconnected(ref, d)
		}
		cl, ack, at, err := c.follow(ctx, addr, dial, onDisconnect)
		if err == nil {
			c.opened(at, ref)
			c.mu.Lock()
			c.last = at
			c.stats.Connects++
			c.mu.Unlock()
			return cl, ack, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	c.mu.Lock()
	c.stats.ConnectFailures++
	c.mu.Unlock()
	return nil, nil, errors.Join(errs...)
}

// follow dials addr and the references it is sent on to.
func (c *connector) follow(ctx context.Context, addr string, dial dialFunc, onDisconnect func(*paho.Disconnect)) (*paho.Client, *paho.Connack, string, error) {
	for hop := 0; ; hop++ {
		cl, ack, err := dial(ctx, addr, onDisconnect)
		if err == nil {
			return cl, ack, addr, nil
		}
		var refused *mqtttest.RefusedError
		if !errors.As(err, &refused) || !isRedirect(refused.Connack.ReasonCode) || refused.ServerReference() == "" {
			return nil, nil, "", err
		}
		if hop == c.maxRedirects {
			return nil, nil, "", fmt.Errorf("mqttclient: %d redirects in a row, last from %s: %w", hop, addr, err)
		}
		next, perr := c.reference(refused.ServerReference())
		if perr != nil {
			return nil, nil, "", errors.Join(err, perr)
		}
		addr = next
	}
}

// reference checks a Server Reference and counts it as followed or
// refused.
func (c *connector) reference(ref string) (string, error) {
	addr, err := parseReference(ref)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.stats.RefusedReferences++
		return "", err
	}
	c.stats.Redirects++
	return addr, nil
}

// serverDisconnect remembers the reference of a DISCONNECT 0x9C/0x9D for
// the next connect.
func (c *connector) serverDisconnect(d *paho.Disconnect) {
	if !isRedirect(d.ReasonCode) || d.Properties == nil || d.Properties.ServerReference == "" {
		return
	}
	if addr, err := c.reference(d.Properties.ServerReference); err == nil {
		c.mu.Lock()
		c.redirect = addr
		c.mu.Unlock()
	}
}

// maxReference bounds the Server Reference looked at.
const maxReference = 256

// parseReference takes the first of a space-separated list of references:
// host:port with a loopback IP literal host.
func parseReference(ref string) (string, error) {
	if len(ref) > maxReference {
		return "", fmt.Errorf("mqttclient: server reference of %d bytes", len(ref))
	}
	first, _, _ := strings.Cut(strings.TrimSpace(ref), " ")
	host, port, err := net.SplitHostPort(first)
	if err != nil {
		return "", fmt.Errorf("mqttclient: server reference %q: %w", ref, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return "", fmt.Errorf("mqttclient: server reference %q: not a loopback address, not followed", ref)
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", fmt.Errorf("mqttclient: server reference %q: bad port", ref)
	}
	return first, nil
}

// sleepCtx pauses d or until ctx ends (a back-off between connection
// rounds).
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
