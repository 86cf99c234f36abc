package mqttclient

import (
	"context"
	"errors"
	"fmt"
	"net"
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
}

type dialFunc func(ctx context.Context, addr string) (*paho.Client, *paho.Connack, error)

// connector connects through an address list, following redirections.
type connector struct {
	addrs        []string
	maxRedirects int

	mu       sync.Mutex
	last     string // address of the last connection, tried first
	redirect string // from a server DISCONNECT, tried first on the next connect
	next     int    // rotation of addrs
	stats    ConnStats
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
	return &connector{addrs: addrs, maxRedirects: maxRedirects}, nil
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

// connect makes one round through the candidates.
func (c *connector) connect(ctx context.Context, dial dialFunc) (*paho.Client, *paho.Connack, error) {
	var errs []error
	for _, addr := range c.candidates() {
		cl, ack, at, err := c.follow(ctx, addr, dial)
		if err == nil {
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
func (c *connector) follow(ctx context.Context, addr string, dial dialFunc) (*paho.Client, *paho.Connack, string, error) {
	for hop := 0; ; hop++ {
		cl, ack, err := dial(ctx, addr)
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
