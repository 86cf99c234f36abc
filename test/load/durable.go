package load

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// sessionExpiry is the expiry of the persistent sessions the scenarios
// create (seconds): long enough to outlive any run.
const sessionExpiry = 24 * 3600

// connectWorkers is how many sessions are created concurrently.
const connectWorkers = 16

// SessionSpec describes Count persistent sessions named Prefix-<i>, each
// subscribed at QoS 1 to Filter(i).
type SessionSpec struct {
	Prefix string
	Count  int
	Filter func(i int) string
}

func (s SessionSpec) id(i int) string { return fmt.Sprintf("%s-%d", s.Prefix, i) }

// CreateSessions creates the sessions (clean start false, a session
// expiry, a QoS 1 subscription) and disconnects them, so the broker
// queues what is published to them from then on.
func CreateSessions(ctx context.Context, addr string, spec SessionSpec) error {
	return createSessionsWith(ctx, addr, spec, connectWorkers, false)
}

// createSession connects id (clean start false), subscribes it to filter
// at QoS 1 and disconnects, reporting the CONNACK's session present flag.
func createSession(ctx context.Context, addr, id, filter string) (present bool, err error) {
	c, err := Dial(ctx, addr, ConnOptions{ClientID: id, SessionExpiry: sessionExpiry})
	if err != nil {
		return false, err
	}
	if err := c.Subscribe(filter, 1); err != nil {
		return c.SessionPresent, errors.Join(err, c.Close())
	}
	return c.SessionPresent, c.Disconnect()
}

// PublishSpec is a QoS 1 publishing run: Publishers connections share
// Messages, each sending round robin to its Topics.
type PublishSpec struct {
	Publishers int
	Messages   int
	Payload    int
	// Topics lists the topics of publisher p, whose messages are numbers
	// first, first+1, ... of the whole run.
	Topics func(p, first int) []string
	Window int // QoS 1 messages unacknowledged per publisher (capped by the server)
}

// share returns publisher p's first message number and message count.
func (s PublishSpec) share(p int) (first, n int) {
	n, extra := s.Messages/s.Publishers, s.Messages%s.Publishers
	first = p*n + min(p, extra)
	if p < extra {
		n++
	}
	return first, n
}

// PublishResult is what a publishing run measured.
type PublishResult struct {
	Acked    int64
	Rejected int64 // PUBACKs with an error reason code
	Elapsed  time.Duration
}

// Rate is acknowledged messages per second.
func (r PublishResult) Rate() float64 { return float64(r.Acked) / r.Elapsed.Seconds() }

// PublishAll runs spec and returns once every message is acknowledged.
func PublishAll(ctx context.Context, addr string, spec PublishSpec) (PublishResult, error) {
	pubs := make([]*Publisher, 0, spec.Publishers)
	clients := make([]*Client, 0, spec.Publishers)
	defer closeAll(clients)
	for p := range spec.Publishers {
		c, err := Dial(ctx, addr, ConnOptions{ClientID: fmt.Sprintf("load-pub-%d", p), CleanStart: true})
		if err != nil {
			return PublishResult{}, err
		}
		clients = append(clients, c)
		first, _ := spec.share(p)
		pub, err := NewPublisher(c, p, spec.Topics(p, first), 1, spec.Payload, spec.Window)
		if err != nil {
			return PublishResult{}, err
		}
		pubs = append(pubs, pub)
	}
	consumeCtx, stop := context.WithCancel(ctx)
	var readers, writers group
	for i, c := range clients {
		readers.Go(func() error { return c.Consume(consumeCtx, pubs[i].Handlers()) })
	}
	start := time.Now()
	for i, pub := range pubs {
		_, n := spec.share(i)
		writers.Go(func() error { return pub.Run(ctx, n) })
	}
	err := writers.Wait()
	res := PublishResult{Elapsed: time.Since(start)}
	stop()
	for _, c := range clients {
		err = errors.Join(err, c.Disconnect())
	}
	err = errors.Join(err, readers.Wait())
	for _, p := range pubs {
		res.Acked += p.Acked()
		res.Rejected += p.Rejected()
	}
	return res, err
}

// DrainResult is what a drain measured.
type DrainResult struct {
	Delivered      int64
	Elapsed        time.Duration // CONNECT to the last message
	SessionPresent bool
	Disorder       int64
}

// Rate is delivered messages per second.
func (r DrainResult) Rate() float64 { return float64(r.Delivered) / r.Elapsed.Seconds() }

// Drain reconnects the persistent session id and receives want queued
// messages, acknowledging each; the window is the broker's inflight limit.
func Drain(ctx context.Context, addr, id string, want int64) (DrainResult, error) {
	tally := NewTally(want, 0, nil)
	sink := NewSink(tally, 0)
	start := time.Now()
	c, err := Dial(ctx, addr, ConnOptions{ClientID: id, SessionExpiry: sessionExpiry})
	if err != nil {
		return DrainResult{}, err
	}
	consumeCtx, stop := context.WithCancel(ctx)
	var g group
	g.Go(func() error { return c.Consume(consumeCtx, sink.Handlers()) })
	err = tally.Wait(ctx)
	res := DrainResult{
		Delivered: tally.Got(), Elapsed: tally.Last().Sub(start),
		SessionPresent: c.SessionPresent, Disorder: sink.Disorder(),
	}
	stop()
	err = errors.Join(err, g.Wait(), c.Disconnect())
	if err != nil {
		return res, fmt.Errorf("load: drain %s: %d of %d: %w", id, res.Delivered, want, err)
	}
	if !res.SessionPresent {
		return res, fmt.Errorf("load: drain %s: session present false", id)
	}
	return res, nil
}
