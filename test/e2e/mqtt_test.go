//go:build e2e

package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// MQTT 5.0 clients (github.com/eclipse/paho.golang) for the scenarios.
// The traffic of scenarios 2 and 3 is recorded and checked by test/history
// (traffic_test.go); inbox serves the scenarios that check a few
// messages by hand.

// inbox records, per topic, how often each sequence number arrived.
type inbox struct {
	mu    sync.Mutex
	seen  map[string]map[int]int
	total int
	last  time.Time // arrival of the latest message
	// errors are payloads that did not decode; check counts them as
	// missing messages.
	errors []string
}

func newInbox() *inbox { return &inbox{seen: map[string]map[int]int{}} }

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
	b.seen[p.Topic][n]++
	b.total++
	b.last = time.Now()
}

// check counts the acknowledged sequence numbers of each topic that never
// arrived, and the payloads that did not decode.
func (b *inbox) check(acked map[string][]int) (missing int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	missing = len(b.errors)
	for topic, seqs := range acked {
		for _, s := range seqs {
			if b.seen[topic][s] == 0 {
				missing++
			}
		}
	}
	return missing
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
