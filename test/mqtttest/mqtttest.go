// Package mqtttest holds the MQTT 5.0 test clients (on
// github.com/eclipse/paho.golang) that the binary-level tests of
// cmd/bollard and the end-to-end scenarios of test/e2e share: a dial that
// fails on a refused CONNACK (RefusedError, with the CONNACK), client
// session state that can outlive a connection (Session), and the creation
// of an offline persistent subscriber.
package mqtttest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/eclipse/paho.golang/paho/session"
)

// RefusedError is the error of a CONNACK with an error reason code (0x80
// or more). Connack holds the packet: a 0x9C Use another server or 0x9D
// Server moved refusal carries the Server Reference in its properties.
type RefusedError struct {
	ClientID string
	Connack  *paho.Connack
}

func (e *RefusedError) Error() string {
	msg := fmt.Sprintf("mqtttest: connect %s: reason code 0x%02x", e.ClientID, e.Connack.ReasonCode)
	if p := e.Connack.Properties; p != nil && p.ReasonString != "" {
		msg += " (" + p.ReasonString + ")"
	}
	return msg
}

// ServerReference is the Server Reference of the refusing CONNACK, or "".
func (e *RefusedError) ServerReference() string {
	if e.Connack.Properties == nil {
		return ""
	}
	return e.Connack.Properties.ServerReference
}

// Options holds the less common settings of DialWith.
type Options struct {
	// Session is the client-side session state to use (see Session); nil
	// gives the connection state of its own, closed with it.
	Session *Session
	// OnServerDisconnect, when set, sees a DISCONNECT from the server
	// (such as 0x9C Use another server with a Server Reference).
	OnServerDisconnect func(*paho.Disconnect)
}

// Dial connects a 5.0 client to addr. expiry > 0 makes the session
// persistent; clean starts a new session. onMsg, when set, sees every
// PUBLISH before paho acknowledges it. A CONNACK with an error reason code
// is returned with a *RefusedError.
func Dial(ctx context.Context, addr, clientID string, clean bool, expiry uint32, onMsg func(*paho.Publish)) (*paho.Client, *paho.Connack, error) {
	return DialWith(ctx, addr, clientID, clean, expiry, onMsg, Options{})
}

// DialWith is Dial with Options.
func DialWith(ctx context.Context, addr, clientID string, clean bool, expiry uint32, onMsg func(*paho.Publish), o Options) (*paho.Client, *paho.Connack, error) {
	conn, err := dialTCP(ctx, addr)
	if err != nil {
		return nil, nil, err
	}
	return connect(ctx, conn, clientID, clean, expiry, onMsg, o)
}

// dialTCP opens the TCP connection a client runs over.
func dialTCP(ctx context.Context, addr string) (*net.TCPConn, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("mqtttest: dial %s: %w", addr, err)
	}
	return conn.(*net.TCPConn), nil // what "tcp" dials
}

// connect runs an MQTT session over conn, as DialWith.
func connect(ctx context.Context, conn net.Conn, clientID string, clean bool, expiry uint32, onMsg func(*paho.Publish), o Options) (*paho.Client, *paho.Connack, error) {
	var sess session.SessionManager = newSession()
	if o.Session != nil {
		sess = o.Session.g
	}
	cfg := paho.ClientConfig{ClientID: clientID, Conn: conn, Session: sess, OnClientError: func(error) {},
		OnServerDisconnect: o.OnServerDisconnect, PacketTimeout: 10 * time.Second}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { onMsg(pr.Packet); return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	cp := &paho.Connect{ClientID: clientID, CleanStart: clean, KeepAlive: 30}
	if expiry > 0 {
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := c.Connect(cctx, cp)
	if ack != nil && ack.ReasonCode >= 0x80 { // paho returns the CONNACK with its error
		_ = conn.Close()
		return nil, ack, &RefusedError{ClientID: clientID, Connack: ack}
	}
	if err != nil {
		_ = conn.Close()
		return nil, ack, fmt.Errorf("mqtttest: connect %s: %w", clientID, err)
	}
	return c, ack, nil
}

// SubscribeOffline creates a persistent session (expiry in seconds)
// subscribed to filter at qos and disconnects it normally, leaving it
// offline to queue messages. It returns once the server has closed the
// connection after the DISCONNECT, so the session is offline: until the
// server has read the DISCONNECT it still delivers to the connection, and
// a message published meanwhile would be in flight there, sent again (DUP)
// on the next connection, and not dropped by a queue limit (an
// unacknowledged delivery never is). A server that does not close within
// serverCloseWait is an error.
func SubscribeOffline(ctx context.Context, addr, clientID, filter string, qos byte, expiry uint32) error {
	conn, err := dialTCP(ctx, addr)
	if err != nil {
		return err
	}
	w := newCloseWaiter(conn)
	c, _, err := connect(ctx, w, clientID, true, expiry, nil, Options{})
	if err != nil {
		return err
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		_ = c.Disconnect(&paho.Disconnect{})
		return fmt.Errorf("mqtttest: subscribe %s: %w", clientID, err)
	}
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		return fmt.Errorf("mqtttest: disconnect %s: %w", clientID, err)
	}
	if !w.serverClosed() {
		return fmt.Errorf("mqtttest: disconnect %s: the server did not close the connection within %s", clientID, serverCloseWait)
	}
	return nil
}

// serverCloseWait bounds how long a closeWaiter waits for the server.
var serverCloseWait = 10 * time.Second

// closeWaiter is a connection whose Close first ends the client's side
// (everything written, DISCONNECT included, is then followed by FIN) and
// reads, up to serverCloseWait, until the server has closed its own, before
// closing. It reads for itself rather than through the client's reader,
// which may have stopped reading by then (a net.Conn takes concurrent
// reads; what arrives at that point is discarded). It embeds the
// *net.TCPConn itself, not a net.Conn: paho writes each packet as
// net.Buffers, which only a connection of package net writes with one
// writev. Through an interface each buffer was a write of its own, and
// under CPU load the broker answered about one SUBSCRIBE in 160 with 0x81
// Malformed Packet (a split packet alone it reads whole: tried at every
// boundary, so most likely another of paho's writes landed in between).
type closeWaiter struct {
	*net.TCPConn
	once     sync.Once // a second Close waits for the first
	err      error
	waitedOK atomic.Bool
}

func newCloseWaiter(c *net.TCPConn) *closeWaiter { return &closeWaiter{TCPConn: c} }

func (w *closeWaiter) Close() error {
	w.once.Do(func() {
		_ = w.CloseWrite()
		_ = w.SetReadDeadline(time.Now().Add(serverCloseWait))
		var buf [512]byte
		for {
			_, err := w.Read(buf[:])
			if err == nil {
				continue
			}
			var ne net.Error
			w.waitedOK.Store(!errors.As(err, &ne) || !ne.Timeout())
			break
		}
		w.err = w.TCPConn.Close()
	})
	return w.err
}

// serverClosed reports whether Close saw the server close first.
func (w *closeWaiter) serverClosed() bool { return w.waitedOK.Load() }
