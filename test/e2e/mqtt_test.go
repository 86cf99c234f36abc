//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

// MQTT 5.0 clients (github.com/eclipse/paho.golang) for the scenarios.

// inbox records, per topic, how often each sequence number arrived.
type inbox struct {
	mu    sync.Mutex
	seen  map[string]map[int]int
	total int
	last  time.Time // arrival of the latest message
	// high is the highest number seen per topic; inversions counts first
	// arrivals below it (per-topic order broken).
	high       map[string]int
	inversions int
	errors     []string
}

func newInbox() *inbox { return &inbox{seen: map[string]map[int]int{}, high: map[string]int{}} }

func (b *inbox) add(p *paho.Publish) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n, err := strconv.Atoi(strings.TrimPrefix(string(p.Payload), "seq-"))
	if err != nil {
		b.errors = append(b.errors, fmt.Sprintf("bad payload %q on %s", p.Payload, p.Topic))
		return
	}
	if b.seen[p.Topic] == nil {
		b.seen[p.Topic] = map[int]int{}
	}
	if b.seen[p.Topic][n] == 0 && n < b.high[p.Topic] {
		b.inversions++
	}
	b.high[p.Topic] = max(b.high[p.Topic], n)
	b.seen[p.Topic][n]++
	b.total++
	b.last = time.Now()
}

// check counts the acknowledged sequence numbers of each topic that never
// arrived.
func (b *inbox) check(acked map[string][]int) (missing int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for topic, seqs := range acked {
		for _, s := range seqs {
			if b.seen[topic][s] == 0 {
				missing++
			}
		}
	}
	return missing
}

// dupsOn counts the extra deliveries of numbers that arrived more than
// once on topic.
func (b *inbox) dupsOn(topic string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	dups := 0
	for _, n := range b.seen[topic] {
		dups += max(n-1, 0)
	}
	return dups
}

func (b *inbox) dupsAll() int {
	b.mu.Lock()
	topics := make([]string, 0, len(b.seen))
	for t := range b.seen {
		topics = append(topics, t)
	}
	b.mu.Unlock()
	dups := 0
	for _, t := range topics {
		dups += b.dupsOn(t)
	}
	return dups
}

// outOfOrder counts first arrivals that came after a higher number on the
// same topic.
func (b *inbox) outOfOrder() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inversions
}

// quietFor reports whether nothing arrived for d.
func (b *inbox) quietFor(d time.Duration) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return time.Since(b.last) >= d
}

func (b *inbox) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.total
}

// publisher publishes "seq-1", "seq-2", ... to one topic, one at a time,
// reconnecting (clean start) whenever the broker goes away. A number that
// fails is not retried: it is simply not acknowledged. acked holds the
// numbers whose PUBACK (QoS 1) or PUBCOMP (QoS 2) arrived with success.
type publisher struct {
	addr, clientID, topic string
	qos                   byte

	mu         sync.Mutex
	sent       int
	acked      []int
	failed     int
	reconnects int
}

func (p *publisher) run(ctx context.Context) {
	for ctx.Err() == nil {
		c, _, err := mqtttest.Dial(ctx, p.addr, p.clientID, true, 0, nil)
		if err != nil {
			sleepCtx(ctx, 50*time.Millisecond)
			continue
		}
		p.publishUntilError(ctx, c)
		_ = c.Disconnect(&paho.Disconnect{}) // the broker may be gone already
		if ctx.Err() == nil {
			p.mu.Lock()
			p.reconnects++
			p.mu.Unlock()
		}
	}
}

func (p *publisher) publishUntilError(ctx context.Context, c *paho.Client) {
	for ctx.Err() == nil {
		p.mu.Lock()
		p.sent++
		seq := p.sent
		p.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := c.Publish(pctx, &paho.Publish{Topic: p.topic, QoS: p.qos, Payload: []byte("seq-" + strconv.Itoa(seq))})
		cancel()
		p.mu.Lock()
		ok := err == nil && resp != nil && resp.ReasonCode < 0x80
		if ok {
			p.acked = append(p.acked, seq)
		} else {
			p.failed++
		}
		p.mu.Unlock()
		if !ok {
			return
		}
	}
}

func (p *publisher) stats() (sent, acked, failed, reconnects int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sent, len(p.acked), p.failed, p.reconnects
}

func (p *publisher) ackedSeqs() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.acked...)
}

// sleepCtx waits d or until ctx ends (a back-off between reconnects, not
// a wait for a condition).
func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
