package mqttclient

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/history"
	"github.com/bollard-io/bollard/test/mqtttest"
)

// PublisherConfig configures a Publisher.
type PublisherConfig struct {
	// ID names the publisher in payloads and is its MQTT client ID.
	ID    string
	Topic string
	QoS   byte
	// Addrs are the servers to connect to, in turn.
	Addrs []string
	// Count is how many messages to send (seq 1..Count); 0 sends until
	// the context of Run ends.
	Count uint64
	// PublishTimeout bounds the wait for one acknowledgement (default
	// DefaultPublishTimeout; paho's own packet timeout is 10s).
	PublishTimeout time.Duration
	// Backoff is the pause after a round of addresses without a
	// connection (default DefaultBackoff).
	Backoff time.Duration
	// MaxRedirects bounds the Server References followed in a row
	// (default DefaultMaxRedirects).
	MaxRedirects int
}

// PublisherStats counts a publisher's attempts and connections.
type PublisherStats struct {
	Sent, Acked, Failed, Unknown uint64
	ConnStats
}

// Publisher publishes numbered messages one at a time and records them.
type Publisher struct {
	cfg  PublisherConfig
	rec  *history.Recorder
	conn *connector

	mu    sync.Mutex
	seq   uint64 // last sequence number sent
	stats PublisherStats
}

// NewPublisher checks cfg; Run publishes.
func NewPublisher(rec *history.Recorder, cfg PublisherConfig) (*Publisher, error) {
	if err := history.ValidID(cfg.ID); err != nil {
		return nil, err
	}
	if cfg.Topic == "" || cfg.QoS > 2 {
		return nil, fmt.Errorf("mqttclient: publisher %s: topic %q, QoS %d", cfg.ID, cfg.Topic, cfg.QoS)
	}
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = DefaultPublishTimeout
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = DefaultBackoff
	}
	conn, err := newConnector(cfg.Addrs, cfg.MaxRedirects)
	if err != nil {
		return nil, err
	}
	return &Publisher{cfg: cfg, rec: rec, conn: conn}, nil
}

// ID is the publisher's ID.
func (p *Publisher) ID() string { return p.cfg.ID }

// Spans returns the connections the publisher held so far.
func (p *Publisher) Spans() []Span { return p.conn.Spans() }

// Stats returns the counts so far.
func (p *Publisher) Stats() PublisherStats {
	p.mu.Lock()
	s := p.stats
	p.mu.Unlock()
	s.ConnStats = p.conn.Stats()
	return s
}

// Run publishes until Count messages were sent or ctx ends, reconnecting
// as needed, and returns nil then. It returns an error only when the
// Recorder refuses an event (history.ErrFull, say). Run is not reentrant.
func (p *Publisher) Run(ctx context.Context) error {
	for ctx.Err() == nil && !p.done() {
		c, _, err := p.conn.connect(ctx, p.dial)
		if err != nil {
			sleepCtx(ctx, p.cfg.Backoff)
			continue
		}
		lost, err := p.publishUntilLost(ctx, c)
		if lost {
			// paho may answer the publish before it closes the client.
			waitDone(c, hangUpTimeout)
		}
		p.conn.ended(!lost)
		_ = c.Disconnect(&paho.Disconnect{}) // the connection may be gone already
		<-c.Done()
		if err != nil {
			return err
		}
	}
	return nil
}

func (p *Publisher) dial(ctx context.Context, addr string, onDisconnect func(*paho.Disconnect)) (*paho.Client, *paho.Connack, error) {
	return mqtttest.DialWith(ctx, addr, p.cfg.ID, true, 0, nil, mqtttest.Options{OnServerDisconnect: onDisconnect})
}

func (p *Publisher) done() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cfg.Count > 0 && p.seq >= p.cfg.Count
}

// publishUntilLost publishes on c until an outcome is unknown (the
// connection is probably gone: lost, unless the publish timed out on a
// live connection), Count is reached or ctx ends.
func (p *Publisher) publishUntilLost(ctx context.Context, c *paho.Client) (lost bool, err error) {
	// paho.golang v0.23.0 does not release a publish waiting for its
	// acknowledgement when the connection is lost with session expiry 0
	// (the session state is cleaned without waking the waiter), so the
	// wait ends when the client does.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-c.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	server := p.conn.Addr()
	for ctx.Err() == nil && !p.done() {
		p.mu.Lock()
		p.seq++
		seq := p.seq
		p.stats.Sent++
		p.mu.Unlock()
		payload, err := history.Encode(p.cfg.ID, seq)
		if err != nil {
			return false, err
		}
		a := history.Attempt{Publisher: p.cfg.ID, Seq: seq, QoS: p.cfg.QoS, Topic: p.cfg.Topic, Server: server, Sent: time.Now()}
		if err := p.rec.Sent(a); err != nil {
			return false, err
		}
		pctx, cancel := context.WithTimeout(ctx, p.cfg.PublishTimeout)
		resp, err := c.Publish(pctx, &paho.Publish{Topic: p.cfg.Topic, QoS: p.cfg.QoS, Payload: payload})
		timedOut := errors.Is(pctx.Err(), context.DeadlineExceeded)
		cancel()
		o, detail := outcome(p.cfg.QoS, resp, err)
		if err := p.settle(seq, o, detail); err != nil {
			return false, err
		}
		if o == history.Unknown && (err != nil || p.cfg.QoS > 0) {
			return ctx.Err() == nil && !timedOut || isDone(c), nil
		}
	}
	return false, nil
}

// waitDone waits up to d for c to end.
func waitDone(c *paho.Client, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-c.Done():
	case <-t.C:
	}
}

// isDone reports whether c's connection has ended.
func isDone(c *paho.Client) bool {
	select {
	case <-c.Done():
		return true
	default:
		return false
	}
}

func (p *Publisher) settle(seq uint64, o history.Outcome, detail string) error {
	p.mu.Lock()
	switch o {
	case history.Acked:
		p.stats.Acked++
	case history.Failed:
		p.stats.Failed++
	default:
		p.stats.Unknown++
	}
	p.mu.Unlock()
	return p.rec.Settle(p.cfg.ID, seq, o, time.Now(), detail)
}

// outcome classifies a publish: a response with a reason code of 0x80 or
// more is Failed (paho returns it with or without an error), a success
// response Acked, anything else Unknown (QoS 0 always).
func outcome(qos byte, resp *paho.PublishResponse, err error) (history.Outcome, string) {
	switch {
	case qos == 0 && err == nil:
		return history.Unknown, "QoS 0"
	case resp != nil && resp.ReasonCode >= 0x80:
		return history.Failed, fmt.Sprintf("reason code 0x%02x", resp.ReasonCode)
	case err == nil && resp != nil:
		return history.Acked, ""
	case err == nil:
		err = errors.New("no response")
	}
	return history.Unknown, err.Error()
}
