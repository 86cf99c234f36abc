package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

// MQTT 5.0 test clients on github.com/eclipse/paho.golang, used where a
// test must count acknowledgements exactly (the crash tests).

// subscribeOnce creates a persistent session subscribed to filter and
// disconnects it, leaving the session offline.
func subscribeOnce(t *testing.T, addr, clientID, filter string, qos byte, expiry uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := mqtttest.SubscribeOffline(ctx, addr, clientID, filter, qos, expiry); err != nil {
		t.Fatal(err)
	}
}

// received records what a subscriber got, by topic, in arrival order.
type received struct {
	mu     sync.Mutex
	seqs   map[string][]int
	dups   int // PUBLISH packets with the DUP flag
	errors []string
}

func newReceived() *received { return &received{seqs: map[string][]int{}} }

func (r *received) add(p *paho.Publish) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n, err := strconv.Atoi(strings.TrimPrefix(string(p.Payload), "seq-"))
	if err != nil {
		r.errors = append(r.errors, fmt.Sprintf("bad payload %q on %s", p.Payload, p.Topic))
		return
	}
	if p.Duplicate() {
		r.dups++
	}
	r.seqs[p.Topic] = append(r.seqs[p.Topic], n)
}

// snapshot copies the received sequences.
func (r *received) snapshot() map[string][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]int, len(r.seqs))
	for k, v := range r.seqs {
		out[k] = append([]int(nil), v...)
	}
	return out
}

// covers reports whether every topic received 1..acked[topic].
func (r *received) covers(acked map[string]int) bool {
	got := r.snapshot()
	for topic, n := range acked {
		seen := map[int]bool{}
		for _, s := range got[topic] {
			seen[s] = true
		}
		for i := 1; i <= n; i++ {
			if !seen[i] {
				return false
			}
		}
	}
	return true
}

// publisher publishes "seq-1", "seq-2", ... to one topic, one at a time,
// and records the last acknowledged sequence number (PUBACK for QoS 1,
// PUBCOMP for QoS 2). It stops at the first failure (the broker went
// away) or after max messages.
type publisher struct {
	topic string
	qos   byte
	max   int

	mu     sync.Mutex
	acked  int
	sent   int
	reason string // why it stopped
}

func (p *publisher) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.acked
}

func (p *publisher) run(ctx context.Context, addr, clientID string) {
	c, _, err := mqtttest.Dial(ctx, addr, clientID, true, 0, nil)
	if err != nil {
		p.stop(err.Error())
		return
	}
	defer c.Disconnect(&paho.Disconnect{}) //nolint:errcheck // the broker may be gone
	for i := 1; i <= p.max; i++ {
		p.mu.Lock()
		p.sent = i
		p.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		resp, err := c.Publish(pctx, &paho.Publish{Topic: p.topic, QoS: p.qos, Payload: []byte("seq-" + strconv.Itoa(i))})
		cancel()
		if err != nil {
			p.stop(err.Error())
			return
		}
		if resp != nil && resp.ReasonCode >= 0x80 {
			p.stop(fmt.Sprintf("reason code 0x%02x", resp.ReasonCode))
			return
		}
		p.mu.Lock()
		p.acked = i
		p.mu.Unlock()
	}
	p.stop("done")
}

func (p *publisher) stop(reason string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reason = reason
}
