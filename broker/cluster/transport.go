package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/lograte"
)

// The replication port speaks Raft's RPCs, which can rewrite every
// session: nothing may reach them without proving it holds the cluster
// secret. Each connection starts with a mutual challenge-response:
//
//	dialer   -> listener: magic, nonceD
//	listener -> dialer:   magic, nonceL, HMAC(secret, "L" | nonceD | nonceL)
//	dialer   -> listener: HMAC(secret, "D" | nonceD | nonceL)
//
// Fresh nonces on both sides defeat replay; the secret never crosses the
// wire. A dialer that opens with formatQueryMagic instead asks which log
// entry format the member reads (format.go): after the same handshake the
// listener answers and closes, and Raft never sees the connection. The traffic itself is not encrypted (see docs/security.md).
const (
	handshakeMagic   = "BOLLARD-RAFT/1\n"
	nonceSize        = 32
	macSize          = sha256.Size
	handshakeTimeout = 5 * time.Second
	// maxHandshakes bounds connections that have not proved themselves
	// yet; more are closed at once (a flood cannot hold the port).
	maxHandshakes = 64
	// MinSecretSize is the shortest cluster secret accepted.
	MinSecretSize = 32
)

var errHandshake = errors.New("cluster: replication handshake failed")

// streamLayer is a raft.StreamLayer over TCP whose connections have passed
// the handshake. Accept returns only authenticated connections; the
// handshakes run in their own goroutines so a slow or hostile peer cannot
// stall the others.
type streamLayer struct {
	ln       net.Listener
	secret   []byte
	log      *slog.Logger
	dialAddr func(raft.ServerAddress) string // rewrites dial targets (tests: a fault proxy)
	format   atomic.Pointer[formatInfo]      // what a format query is answered (format.go)

	conns     chan net.Conn
	closed    chan struct{}
	closeOnce sync.Once
	pending   atomic.Int32
	refused   atomic.Int64 // connections that failed the handshake
	// refusedLog logs refused connections at most once per raftLogEvery
	// (each is counted): anything can connect to the replication port.
	refusedLog lograte.Limiter
	wg         sync.WaitGroup
}

// newStreamLayer accepts on ln; a format query is answered with fi
// (format.go).
func newStreamLayer(ln net.Listener, secret []byte, log *slog.Logger, fi formatInfo) *streamLayer {
	s := &streamLayer{ln: ln, secret: secret, log: log, conns: make(chan net.Conn), closed: make(chan struct{}),
		refusedLog: lograte.Limiter{Every: raftLogEvery}}
	s.format.Store(&fi)
	s.wg.Add(1)
	go s.acceptLoop()
	return s
}

func (s *streamLayer) acceptLoop() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			select {
			case <-s.closed:
				return
			default:
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			s.log.Warn("replication accept failed", "err", err)
			time.Sleep(10 * time.Millisecond) // e.g. out of file descriptors: do not spin
			continue
		}
		if s.pending.Add(1) > maxHandshakes {
			s.pending.Add(-1)
			s.refused.Add(1)
			_ = c.Close()
			continue
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer s.pending.Add(-1)
			hs, err := s.serverHandshake(c)
			if err != nil {
				s.refused.Add(1)
				if ok, skipped := s.refusedLog.Allow("refused", time.Now()); ok {
					s.log.Warn("replication connection refused", "remote", c.RemoteAddr().String(), "err", err,
						"unlogged_before", skipped)
				}
				_ = c.Close()
				return
			}
			if hs.query {
				s.answerFormat(c, hs) // format.go
				_ = c.Close()
				return
			}
			select {
			case s.conns <- c:
			case <-s.closed:
				_ = c.Close()
			}
		}()
	}
}

// Accept implements net.Listener.
func (s *streamLayer) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.closed:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (s *streamLayer) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.closed)
		err = s.ln.Close()
	})
	return err
}

// wait returns once every goroutine of the layer has ended (after Close).
func (s *streamLayer) wait() { s.wg.Wait() }

// Addr implements net.Listener.
func (s *streamLayer) Addr() net.Addr { return s.ln.Addr() }

// Dial implements raft.StreamLayer.
func (s *streamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	target := string(address)
	if s.dialAddr != nil {
		target = s.dialAddr(address)
	}
	c, err := net.DialTimeout("tcp", target, timeout)
	if err != nil {
		return nil, err
	}
	if err := s.clientHandshake(c); err != nil {
		_ = c.Close()
		return nil, fmt.Errorf("%w with %s: %w", errHandshake, target, err)
	}
	return c, nil
}

func (s *streamLayer) mac(side byte, nd, nl []byte) []byte {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte{side})
	m.Write(nd)
	m.Write(nl)
	return m.Sum(nil)
}

// handshake is what an authenticated connection's handshake established:
// its nonces, and whether the dialer asks for the member's entry format
// (formatQueryMagic) instead of speaking Raft.
type handshake struct {
	query  bool
	nd, nl []byte
}

func (s *streamLayer) serverHandshake(c net.Conn) (handshake, error) {
	if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return handshake{}, err
	}
	hello := make([]byte, len(handshakeMagic)+nonceSize)
	if _, err := io.ReadFull(c, hello); err != nil {
		return handshake{}, err
	}
	magic := string(hello[:len(handshakeMagic)])
	if magic != handshakeMagic && magic != formatQueryMagic {
		return handshake{}, errors.New("not a Bollard replication peer")
	}
	nd := hello[len(handshakeMagic):]
	nl := make([]byte, nonceSize)
	if _, err := rand.Read(nl); err != nil {
		return handshake{}, err
	}
	reply := append(append([]byte(handshakeMagic), nl...), s.mac('L', nd, nl)...)
	if _, err := c.Write(reply); err != nil {
		return handshake{}, err
	}
	proof := make([]byte, macSize)
	if _, err := io.ReadFull(c, proof); err != nil {
		return handshake{}, err
	}
	if !hmac.Equal(proof, s.mac('D', nd, nl)) {
		return handshake{}, errors.New("peer does not hold the cluster secret")
	}
	hs := handshake{query: magic == formatQueryMagic, nd: nd, nl: nl}
	if hs.query {
		return hs, nil // answered and closed under the deadline
	}
	return hs, c.SetDeadline(time.Time{})
}

func (s *streamLayer) clientHandshake(c net.Conn) error {
	if _, err := s.clientHandshakeMagic(c, handshakeMagic); err != nil {
		return err
	}
	return c.SetDeadline(time.Time{})
}

// clientHandshakeMagic runs the dialer's side of the handshake, opening
// with magic, and returns its nonces; the connection's deadline is left
// set.
func (s *streamLayer) clientHandshakeMagic(c net.Conn, magic string) (handshake, error) {
	if err := c.SetDeadline(time.Now().Add(handshakeTimeout)); err != nil {
		return handshake{}, err
	}
	nd := make([]byte, nonceSize)
	if _, err := rand.Read(nd); err != nil {
		return handshake{}, err
	}
	if _, err := c.Write(append([]byte(magic), nd...)); err != nil {
		return handshake{}, err
	}
	reply := make([]byte, len(handshakeMagic)+nonceSize+macSize)
	if _, err := io.ReadFull(c, reply); err != nil {
		return handshake{}, err
	}
	if string(reply[:len(handshakeMagic)]) != handshakeMagic {
		return handshake{}, errors.New("not a Bollard replication peer")
	}
	nl := reply[len(handshakeMagic) : len(handshakeMagic)+nonceSize]
	if !hmac.Equal(reply[len(handshakeMagic)+nonceSize:], s.mac('L', nd, nl)) {
		return handshake{}, errors.New("peer does not hold the cluster secret")
	}
	if _, err := c.Write(s.mac('D', nd, nl)); err != nil {
		return handshake{}, err
	}
	return handshake{query: magic == formatQueryMagic, nd: nd, nl: nl}, nil
}
