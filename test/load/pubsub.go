package load

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// group runs goroutines and keeps the first error.
type group struct {
	wg  sync.WaitGroup
	mu  sync.Mutex
	err error
}

func (g *group) Go(f func() error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		if err := f(); err != nil {
			g.mu.Lock()
			g.err = errors.Join(g.err, err)
			g.mu.Unlock()
		}
	}()
}

func (g *group) Wait() error {
	g.wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.err
}

// PubSubSpec is an online publish/subscribe run: Publishers publishers
// (at least one) to one topic, Subscribers subscribers of it.
type PubSubSpec struct {
	Publishers  int // 0 means 1
	Subscribers int
	QoS         byte
	Messages    int // published in all, shared by the publishers
	Payload     int // bytes, at least 16
	// Window bounds each publisher's messages published but not yet
	// delivered to every subscriber (a closed loop, so QoS 0 is not
	// dropped by a slow consumer and latency measures the broker, not an
	// unbounded backlog).
	Window int
	// AckWindow bounds each publisher's QoS 1/2 messages not yet
	// acknowledged (PUBACK, PUBCOMP); 0: the server's Receive Maximum.
	AckWindow int
	// Persistent subscribers have a session expiry (online persistent
	// sessions: the broker stores what it delivers to them); otherwise
	// they are clean sessions.
	Persistent bool
	Timeout    time.Duration
}

func (s PubSubSpec) publishers() int { return max(1, s.Publishers) }

// PubSubResult is what a run measured.
type PubSubResult struct {
	Delivered int64
	Elapsed   time.Duration // first publish to last delivery
	P50, P99  time.Duration // publish to delivery
	Disorder  int64
}

// MsgRate is published messages per second that reached every subscriber.
func (r PubSubResult) MsgRate(subscribers int) float64 {
	return float64(r.Delivered) / float64(subscribers) / r.Elapsed.Seconds()
}

// latencySamples bounds the latency samples kept per subscriber.
const latencySamples = 200_000

// pubsubRun is a run's publishers and subscribers.
type pubsubRun struct {
	pubs    []*Publisher
	pcs     []*Client
	sinks   []*Sink
	clients []*Client
	tally   *Tally
}

func (r *pubsubRun) close() {
	closeAll(r.pcs)
	closeAll(r.clients)
}

// RunPubSub runs spec against the broker at addr.
func RunPubSub(ctx context.Context, addr string, spec PubSubSpec) (PubSubResult, error) {
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	topic := fmt.Sprintf("load/ps/%d", time.Now().UnixNano())
	r := &pubsubRun{}
	defer r.close()
	if err := r.dialPublishers(ctx, addr, topic, spec); err != nil {
		return PubSubResult{}, err
	}
	var err error
	r.sinks, r.clients, err = subscribeAll(ctx, addr, topic, spec, r.tally)
	if err != nil {
		return PubSubResult{}, err
	}
	consumeCtx, stop := context.WithCancel(ctx)
	var g group
	for i, c := range r.pcs {
		g.Go(func() error { return c.Consume(consumeCtx, r.pubs[i].Handlers()) })
	}
	for i, c := range r.clients {
		g.Go(func() error { return c.Consume(consumeCtx, r.sinks[i].Handlers()) })
	}
	res, err := measure(ctx, r, spec)
	stop()
	r.close() // unblock readers of a broker that stopped answering
	if gerr := g.Wait(); gerr != nil {
		err = errors.Join(err, gerr)
	}
	res.P50, res.P99 = Percentiles(r.sinks)
	for _, s := range r.sinks {
		res.Disorder += s.Disorder()
	}
	return res, err
}

// dialPublishers connects the publishers and sets up the tally whose
// deliveries open each publisher's window.
func (r *pubsubRun) dialPublishers(ctx context.Context, addr, topic string, spec PubSubSpec) error {
	n, subs := spec.publishers(), int64(spec.Subscribers)
	r.tally = NewTally(int64(spec.Messages)*subs, n, func(pub uint32) {
		if int(pub) < len(r.pubs) {
			r.pubs[pub].Wake()
		}
	})
	ackWindow := spec.AckWindow
	if ackWindow == 0 {
		ackWindow = 65535 // the server's Receive Maximum caps it
	}
	for i := range n {
		pc, err := Dial(ctx, addr, ConnOptions{ClientID: fmt.Sprintf("load-pub-%d", i), CleanStart: true})
		if err != nil {
			return err
		}
		r.pcs = append(r.pcs, pc)
		pub, err := NewPublisher(pc, i, []string{topic}, spec.QoS, spec.Payload, ackWindow)
		if err != nil {
			return err
		}
		pub.Gate = func(sent int64) bool { return sent-r.tally.GotFrom(i)/subs < int64(spec.Window) }
		r.pubs = append(r.pubs, pub)
	}
	return nil
}

// measure runs the publishers and waits for every delivery.
func measure(ctx context.Context, r *pubsubRun, spec PubSubSpec) (PubSubResult, error) {
	start := time.Now()
	var g group
	n := spec.publishers()
	for i, pub := range r.pubs {
		count := spec.Messages/n + b2i(i < spec.Messages%n)
		g.Go(func() error { return pub.Run(ctx, count) })
	}
	err := g.Wait()
	if err == nil {
		err = r.tally.Wait(ctx)
	}
	res := PubSubResult{Delivered: r.tally.Got(), Elapsed: r.tally.Last().Sub(start)}
	if err != nil {
		return res, fmt.Errorf("load: %d of %d deliveries: %w", r.tally.Got(), r.tally.want, err)
	}
	return res, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func subscribeAll(ctx context.Context, addr, topic string, spec PubSubSpec, t *Tally) ([]*Sink, []*Client, error) {
	var sinks []*Sink
	var clients []*Client
	stride := (spec.Messages*spec.Subscribers)/latencySamples + 1 // samples by each publisher's seq
	for i := range spec.Subscribers {
		o := ConnOptions{ClientID: fmt.Sprintf("load-sub-%d", i), CleanStart: true}
		if spec.Persistent {
			o.SessionExpiry = sessionExpiry
		}
		c, err := Dial(ctx, addr, o)
		if err != nil {
			return nil, clients, err
		}
		clients = append(clients, c)
		if err := c.Subscribe(topic, spec.QoS); err != nil {
			return nil, clients, err
		}
		sinks = append(sinks, NewSink(t, stride))
	}
	return sinks, clients, nil
}

func closeAll(cs []*Client) {
	for _, c := range cs {
		_ = c.Close() // closing twice is harmless; errors say nothing here
	}
}
