package mqtttest

import (
	"io"
	"sync"

	"github.com/eclipse/paho.golang/packets"
	"github.com/eclipse/paho.golang/paho/session"
	"github.com/eclipse/paho.golang/paho/session/state"
)

// guardedSession is paho.golang's in-memory session with one race closed.
// In v0.23.0, a PUBREC read while the client is disconnecting makes the
// session write a PUBREL to a connection it has already dropped (a nil
// io.Writer: the test process panics; seen in CI when a QoS 2 publisher is
// stopped with its PUBLISH in flight). Here the PUBREC is handled under a
// lock that ConnectionLost also takes, and dropped once the connection is
// gone: the broker resends it on the next connection, as MQTT requires.
//
// A client of Dial is used for one connection, so its session is closed
// with it (paho only closes a session it created itself, which is what
// releases the waiters of packets still in flight). A Session's state is
// kept across connections instead (keep).
type guardedSession struct {
	*state.State
	keep bool

	mu   sync.Mutex
	live bool
}

func newSession() *guardedSession { return &guardedSession{State: state.NewInMemory()} }

// Session is client-side session state (paho's in-memory state, with the
// PUBREC guard above) that outlives a connection. A persistent subscriber
// needs it for QoS 2 exactly once: the packet identifiers it answered with
// PUBREC are remembered, so a PUBLISH the broker resends with DUP after a
// reconnect is acknowledged again, not handed to the application twice.
// Use one Session per client ID, with one connection at a time (DialWith
// after the previous client is done), and Close it at the end.
type Session struct{ g *guardedSession }

// NewSession returns empty session state.
func NewSession() *Session {
	return &Session{g: &guardedSession{State: state.NewInMemory(), keep: true}}
}

// Close releases the state (and the waiters of packets still in flight).
func (s *Session) Close() error { return s.g.Close() }

var _ session.SessionManager = (*guardedSession)(nil)

func (s *guardedSession) ConAckReceived(w io.Writer, cp *packets.Connect, ca *packets.Connack) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.State.ConAckReceived(w, cp, ca)
	s.live = err == nil
	return err
}

func (s *guardedSession) ConnectionLost(dp *packets.Disconnect) error {
	s.mu.Lock()
	s.live = false
	err := s.State.ConnectionLost(dp)
	s.mu.Unlock()
	if s.keep {
		return err
	}
	if cerr := s.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *guardedSession) PacketReceived(p *packets.ControlPacket, pub chan<- *packets.Publish) error {
	if _, ok := p.Content.(*packets.Pubrec); !ok {
		return s.State.PacketReceived(p, pub)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.live {
		return nil
	}
	return s.State.PacketReceived(p, pub)
}
