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

// PubSubSpec is an online publish/subscribe run: one publisher, one topic,
// Subscribers clean-start subscribers.
type PubSubSpec struct {
	Subscribers int
	QoS         byte
	Messages    int
	Payload     int // bytes, at least 16
	// Window bounds the messages published but not yet delivered to every
	// subscriber (a closed loop, so QoS 0 is not dropped by a slow
	// consumer and latency measures the broker, not an unbounded backlog).
	Window  int
	Timeout time.Duration
}

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

// RunPubSub runs spec against the broker at addr.
func RunPubSub(ctx context.Context, addr string, spec PubSubSpec) (PubSubResult, error) {
	ctx, cancel := context.WithTimeout(ctx, spec.Timeout)
	defer cancel()
	topic := fmt.Sprintf("load/ps/%d", time.Now().UnixNano())
	pc, err := Dial(ctx, addr, ConnOptions{ClientID: "load-pub", CleanStart: true})
	if err != nil {
		return PubSubResult{}, err
	}
	defer pc.Close()
	pub, err := NewPublisher(pc, 0, []string{topic}, spec.QoS, spec.Payload, 65535)
	if err != nil {
		return PubSubResult{}, err
	}
	subs := int64(spec.Subscribers)
	tally := NewTally(int64(spec.Messages)*subs, func(int64) { pub.Wake() })
	pub.Gate = func(i int64) bool { return i-tally.Got()/subs < int64(spec.Window) }
	sinks, clients, err := subscribeAll(ctx, addr, topic, spec, tally)
	defer closeAll(clients)
	if err != nil {
		return PubSubResult{}, err
	}
	consumeCtx, stop := context.WithCancel(ctx)
	var g group
	g.Go(func() error { return pc.Consume(consumeCtx, pub.Handlers()) })
	for i, c := range clients {
		g.Go(func() error { return c.Consume(consumeCtx, sinks[i].Handlers()) })
	}
	res, err := measure(ctx, pub, tally, spec.Messages)
	stop()
	closeAll(clients) // unblock readers of a broker that stopped answering
	if gerr := g.Wait(); gerr != nil {
		err = errors.Join(err, gerr)
	}
	res.P50, res.P99 = Percentiles(sinks)
	for _, s := range sinks {
		res.Disorder += s.Disorder()
	}
	return res, err
}

func measure(ctx context.Context, pub *Publisher, tally *Tally, n int) (PubSubResult, error) {
	start := time.Now()
	err := pub.Run(ctx, n)
	if err == nil {
		err = tally.Wait(ctx)
	}
	res := PubSubResult{Delivered: tally.Got(), Elapsed: tally.Last().Sub(start)}
	if err != nil {
		return res, fmt.Errorf("load: %d of %d deliveries: %w", tally.Got(), tally.want, err)
	}
	return res, nil
}

func subscribeAll(ctx context.Context, addr, topic string, spec PubSubSpec, t *Tally) ([]*Sink, []*Client, error) {
	var sinks []*Sink
	var clients []*Client
	stride := (spec.Messages*spec.Subscribers)/latencySamples + 1
	for i := range spec.Subscribers {
		c, err := Dial(ctx, addr, ConnOptions{ClientID: fmt.Sprintf("load-sub-%d", i), CleanStart: true})
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
