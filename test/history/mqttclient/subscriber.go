package mqttclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/history"
	"github.com/bollard-io/bollard/test/mqtttest"
)

// SubscriberConfig configures a Subscriber.
type SubscriberConfig struct {
	ClientID string
	Filter   string
	QoS      byte
	// Expiry is the session expiry interval in seconds; it must be
	// positive (the session is persistent).
	Expiry uint32
	// Addrs are the servers to connect to, in turn.
	Addrs []string
	// Publishers are the IDs of the publishers whose topics Filter
	// matches, declared to the Recorder.
	Publishers []string
	// Backoff is the pause after a round of addresses without a
	// connection (default DefaultBackoff).
	Backoff time.Duration
	// MaxRedirects bounds the Server References followed in a row
	// (default DefaultMaxRedirects).
	MaxRedirects int
}

// SubscriberStats counts a subscriber's deliveries and connections.
type SubscriberStats struct {
	Received     uint64
	Drops        int // connections lost without being asked to go offline
	SessionsLost int // reconnects that found no session
	ConnStats
}

// Subscriber is a persistent subscriber that records its deliveries.
type Subscriber struct {
	cfg  SubscriberConfig
	rec  *history.Recorder
	conn *connector
	sess *mqtttest.Session

	ctx       context.Context // ends with Close: aborts a connect
	cancel    context.CancelFunc
	cmds      chan command
	connected atomic.Bool
	wg        sync.WaitGroup

	mu    sync.Mutex
	stats SubscriberStats
}

type command struct {
	online bool
	done   chan struct{}
}

// StartSubscriber creates the session (clean start), subscribes, declares
// the subscription to rec at the SUBACK, and stays online until Offline
// or Close.
func StartSubscriber(ctx context.Context, rec *history.Recorder, cfg SubscriberConfig) (*Subscriber, error) {
	if cfg.ClientID == "" || cfg.Filter == "" || cfg.QoS > 2 || cfg.Expiry == 0 {
		return nil, fmt.Errorf("mqttclient: subscriber %q: filter %q, QoS %d, expiry %d (a persistent session needs one)",
			cfg.ClientID, cfg.Filter, cfg.QoS, cfg.Expiry)
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	conn, err := newConnector(cfg.Addrs, cfg.MaxRedirects)
	if err != nil {
		return nil, err
	}
	s := &Subscriber{cfg: cfg, rec: rec, conn: conn, sess: mqtttest.NewSession(), cmds: make(chan command)}
	c, _, err := conn.connect(ctx, s.dialer(true))
	if err == nil {
		err = s.subscribe(ctx, c, true)
		if err != nil {
			s.hangUp(c)
		}
	}
	if err != nil {
		return nil, errors.Join(err, s.sess.Close())
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.connected.Store(true)
	s.wg.Add(1)
	go s.loop(c)
	return s, nil
}

// ClientID is the subscriber's client ID.
func (s *Subscriber) ClientID() string { return s.cfg.ClientID }

// Connected reports whether the subscriber has a connection now.
func (s *Subscriber) Connected() bool { return s.connected.Load() }

// Spans returns the connections the subscriber held so far.
func (s *Subscriber) Spans() []Span { return s.conn.Spans() }

// Stats returns the counts so far.
func (s *Subscriber) Stats() SubscriberStats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	st.ConnStats = s.conn.Stats()
	return st
}

// Offline disconnects normally (the session stays, and queues) and keeps
// the subscriber offline until Online. It returns once disconnected.
func (s *Subscriber) Offline(ctx context.Context) error { return s.command(ctx, false) }

// Online makes the subscriber reconnect (clean start false); Connected
// tells when it has.
func (s *Subscriber) Online(ctx context.Context) error { return s.command(ctx, true) }

func (s *Subscriber) command(ctx context.Context, online bool) error {
	cmd := command{online: online, done: make(chan struct{})}
	select {
	case s.cmds <- cmd:
	case <-ctx.Done():
		return fmt.Errorf("mqttclient: %s: %w", s.cfg.ClientID, ctx.Err())
	case <-s.ctx.Done():
		return fmt.Errorf("mqttclient: %s: closed", s.cfg.ClientID)
	}
	select {
	case <-cmd.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqttclient: %s: %w", s.cfg.ClientID, ctx.Err())
	}
}

// Close disconnects normally (the session stays on the broker) and stops
// the subscriber.
func (s *Subscriber) Close() error {
	s.cancel()
	s.wg.Wait()
	return s.sess.Close()
}

func (s *Subscriber) dialer(clean bool) dialFunc {
	return func(ctx context.Context, addr string, onDisconnect func(*paho.Disconnect)) (*paho.Client, *paho.Connack, error) {
		return mqtttest.DialWith(ctx, addr, s.cfg.ClientID, clean, s.cfg.Expiry, s.received,
			mqtttest.Options{Session: s.sess, OnServerDisconnect: onDisconnect})
	}
}

func (s *Subscriber) received(p *paho.Publish) {
	s.rec.Received(s.cfg.ClientID, p.Topic, p.Payload, p.QoS, p.Duplicate(), time.Now())
	s.mu.Lock()
	s.stats.Received++
	s.mu.Unlock()
}

// subscribe subscribes c and, the first time, declares the subscription
// at the granted QoS.
func (s *Subscriber) subscribe(ctx context.Context, c *paho.Client, declare bool) error {
	ack, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.cfg.Filter, QoS: s.cfg.QoS}}})
	if err != nil {
		return fmt.Errorf("mqttclient: subscribe %s: %w", s.cfg.ClientID, err)
	}
	if len(ack.Reasons) != 1 || ack.Reasons[0] >= 0x80 {
		return fmt.Errorf("mqttclient: subscribe %s: SUBACK %v", s.cfg.ClientID, ack.Reasons)
	}
	if !declare {
		return nil
	}
	return s.rec.Subscribe(history.Subscription{Subscriber: s.cfg.ClientID, QoS: ack.Reasons[0],
		Publishers: s.cfg.Publishers, Since: time.Now()})
}

// loop owns the connection: it reconnects while online and obeys
// commands.
func (s *Subscriber) loop(c *paho.Client) {
	defer s.wg.Done()
	online := true
	var retry <-chan time.Time
	for {
		if online && c == nil && retry == nil {
			c = s.reconnect()
			if c == nil {
				retry = time.After(s.cfg.Backoff)
			}
		}
		s.connected.Store(c != nil)
		var lost <-chan struct{}
		if c != nil {
			lost = c.Done()
		}
		select {
		case <-s.ctx.Done():
			s.hangUp(c)
			s.connected.Store(false)
			return
		case cmd := <-s.cmds:
			online = cmd.online
			if !online {
				s.hangUp(c)
				c, retry = nil, nil
				s.connected.Store(false)
			}
			close(cmd.done)
		case <-lost:
			c = nil
			s.conn.ended(false)
			s.mu.Lock()
			s.stats.Drops++
			s.mu.Unlock()
		case <-retry:
			retry = nil
		}
	}
}

// reconnect makes one round of connection attempts to the session; nil
// when none succeeded.
func (s *Subscriber) reconnect() *paho.Client {
	c, ack, err := s.conn.connect(s.ctx, s.dialer(false))
	if err != nil {
		return nil
	}
	if ack.SessionPresent {
		return c
	}
	s.mu.Lock()
	s.stats.SessionsLost++
	s.mu.Unlock()
	s.rec.Anomaly(history.Anomaly{Kind: history.SessionLost, Subscriber: s.cfg.ClientID, At: time.Now(),
		Detail: "reconnected with clean start false, session present = false"})
	if err := s.subscribe(s.ctx, c, false); err != nil {
		s.hangUp(c)
		return nil
	}
	return c
}

// hangUpTimeout bounds the wait for paho to shut a client down.
const hangUpTimeout = 10 * time.Second

// hangUp disconnects c normally (reason 0: the session stays) and waits
// until paho is done with it, so no callback runs afterwards.
func (s *Subscriber) hangUp(c *paho.Client) {
	if c == nil {
		return
	}
	s.conn.ended(!isDone(c))
	_ = c.Disconnect(&paho.Disconnect{}) // the connection may be gone already
	waitDone(c, hangUpTimeout)
}
