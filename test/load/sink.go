package load

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
)

// Tally counts deliveries across all the sinks of a run and closes Done
// when the expected number has arrived.
type Tally struct {
	want      int64
	got       atomic.Int64
	byPub     []atomic.Int64 // deliveries by publisher index, when counted
	done      chan struct{}
	onDeliver func(pub uint32)
	start     time.Time
	lastNano  atomic.Int64 // time of the last delivery, UnixNano
}

// NewTally expects want deliveries from publishers numbered 0 to
// publishers-1. onDeliver (may be nil) runs after every delivery with the
// publisher's index, to wake gated publishers.
func NewTally(want int64, publishers int, onDeliver func(pub uint32)) *Tally {
	return &Tally{
		want: want, byPub: make([]atomic.Int64, publishers), done: make(chan struct{}),
		onDeliver: onDeliver, start: time.Now(),
	}
}

// Got returns the deliveries so far.
func (t *Tally) Got() int64 { return t.got.Load() }

// GotFrom returns the deliveries so far of publisher pub's messages.
func (t *Tally) GotFrom(pub int) int64 {
	if pub < 0 || pub >= len(t.byPub) {
		return 0
	}
	return t.byPub[pub].Load()
}

// Done is closed once every expected delivery arrived.
func (t *Tally) Done() <-chan struct{} { return t.done }

// Last returns the time of the latest delivery.
func (t *Tally) Last() time.Time { return time.Unix(0, t.lastNano.Load()) }

func (t *Tally) add(now time.Time, pub uint32) {
	if int(pub) < len(t.byPub) {
		t.byPub[pub].Add(1)
	}
	n := t.got.Add(1)
	t.lastNano.Store(now.UnixNano())
	if n == t.want {
		close(t.done)
	}
	if t.onDeliver != nil {
		t.onDeliver(pub)
	}
}

// Wait blocks until all deliveries arrived, ctx ends, or nothing arrived
// for stallTimeout; it returns ErrStalled in the last case.
func (t *Tally) Wait(ctx context.Context) error {
	tick := time.NewTicker(stallTimeout)
	defer tick.Stop()
	last := t.Got()
	for {
		select {
		case <-t.done:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			if now := t.Got(); now == last {
				return ErrStalled
			} else {
				last = now
			}
		}
	}
}

// Sink is one subscriber's receiving side: it counts deliveries into a
// Tally, samples latency from the payload timestamp, and counts messages
// that arrive out of order per publisher.
type Sink struct {
	tally    *Tally
	stride   uint32
	lat      []time.Duration
	next     map[uint32]uint32
	disorder int64
	mu       sync.Mutex // guards lat, next and disorder
}

// NewSink returns a sink that samples the latency of every stride-th
// message of each publisher (0: none).
func NewSink(t *Tally, stride int) *Sink {
	return &Sink{tally: t, stride: uint32(stride), next: make(map[uint32]uint32)}
}

// Handlers returns the Consume handlers of the sink.
func (s *Sink) Handlers() Handlers {
	return Handlers{OnPublish: s.onPublish}
}

func (s *Sink) onPublish(p *packet.Publish) {
	now := time.Now()
	sent, pub, seq, ok := stamp(p.Payload)
	if !ok {
		pub = ^uint32(0) // counted, but for no publisher
	}
	s.mu.Lock()
	if ok {
		if s.stride > 0 && seq%s.stride == 0 {
			s.lat = append(s.lat, now.Sub(sent))
		}
		if seq < s.next[pub] {
			s.disorder++
		}
		s.next[pub] = seq + 1
	}
	s.mu.Unlock()
	s.tally.add(now, pub)
}

// Disorder returns how many messages arrived behind a later one of the
// same publisher.
func (s *Sink) Disorder() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.disorder
}

// Percentiles returns the p50 and p99 latency over the samples of sinks.
func Percentiles(sinks []*Sink) (p50, p99 time.Duration) {
	var all []time.Duration
	for _, s := range sinks {
		s.mu.Lock()
		all = append(all, s.lat...)
		s.mu.Unlock()
	}
	if len(all) == 0 {
		return 0, 0
	}
	slices.Sort(all)
	return all[len(all)*50/100], all[min(len(all)-1, len(all)*99/100)]
}
