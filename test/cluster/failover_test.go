package cluster_test

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/poll"
)

// counter publishes "<name>/<seq>" one message at a time (window 1, as
// devices do), reconnecting through any member, and records the sequence
// numbers acknowledged with success.
type counter struct {
	name  string
	addrs []string
	topic string
	qos   byte

	mu       sync.Mutex
	seq      int
	acked    []int
	failures int
}

func (p *counter) run(ctx context.Context) {
	for ctx.Err() == nil {
		c, _, _, err := dialAny(ctx, p.addrs, p.name, true, 0, nil)
		if err != nil {
			return
		}
		for ctx.Err() == nil {
			p.mu.Lock()
			p.seq++
			seq := p.seq
			p.mu.Unlock()
			pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			resp, err := c.Publish(pctx, &paho.Publish{Topic: p.topic, QoS: p.qos, Payload: []byte(p.name + "/" + strconv.Itoa(seq))})
			cancel()
			p.mu.Lock()
			ok := err == nil && resp != nil && resp.ReasonCode < 0x80
			if ok {
				p.acked = append(p.acked, seq)
			} else {
				p.failures++
			}
			p.mu.Unlock()
			if !ok {
				break
			}
		}
		_ = c.Disconnect(&paho.Disconnect{})
	}
}

func (p *counter) ackedCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.acked)
}

// receiver collects what a persistent subscriber receives.
type receiver struct {
	mu   sync.Mutex
	got  map[string][]int // publisher -> seqs in arrival order
	last time.Time
}

func (r *receiver) on(p *paho.Publish) {
	name, seqStr, ok := strings.Cut(string(p.Payload), "/")
	if !ok {
		return
	}
	seq, err := strconv.Atoi(seqStr)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.got == nil {
		r.got = map[string][]int{}
	}
	r.got[name] = append(r.got[name], seq)
	r.last = time.Now()
}

func (r *receiver) quietFor(d time.Duration) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return time.Since(r.last) >= d
}

// check reports acknowledged messages missing, QoS 2 duplicates and order
// inversions among first deliveries.
func (r *receiver) check(t *testing.T, who string, p *counter, exactlyOnce bool) {
	t.Helper()
	r.mu.Lock()
	got := append([]int(nil), r.got[p.name]...)
	r.mu.Unlock()
	p.mu.Lock()
	acked := append([]int(nil), p.acked...)
	p.mu.Unlock()
	seen := map[int]int{}
	inversions, prev := 0, 0
	for _, s := range got {
		seen[s]++
		if seen[s] == 1 {
			if s < prev {
				inversions++
			}
			prev = s
		}
	}
	var lost []int
	for _, s := range acked {
		if seen[s] == 0 {
			lost = append(lost, s)
		}
	}
	dups := 0
	for _, n := range seen {
		if n > 1 {
			dups += n - 1
		}
	}
	sort.Ints(lost)
	t.Logf("%s <- %s: acknowledged %d, received %d (%d distinct), lost %d, duplicates %d, out of order %d",
		who, p.name, len(acked), len(got), len(seen), len(lost), dups, inversions)
	if len(lost) > 0 {
		t.Errorf("%s lost %d acknowledged messages of %s: %v", who, len(lost), p.name, lost[:min(20, len(lost))])
	}
	if exactlyOnce && dups > 0 {
		t.Errorf("%s received %d QoS 2 duplicates of %s", who, dups, p.name)
	}
	if inversions > 0 {
		t.Errorf("%s received %s's messages out of order %d times", who, p.name, inversions)
	}
}

// TestLeaderKillLosesNothing kills the leader with SIGKILL under load,
// several times, and checks that every acknowledged message reaches the
// persistent subscribers (QoS 1 and QoS 2), in order, QoS 2 once.
func TestLeaderKillLosesNothing(t *testing.T) {
	kills := 3
	if testing.Short() {
		kills = 1
	}
	c := newCluster(t, 3)
	c.startAll()
	c.leader(60 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	// Offline persistent subscribers, one per QoS.
	subs := map[string]byte{"sub-q1": 1, "sub-q2": 2}
	for id, qos := range subs {
		cl, _, _, err := dialAny(ctx, c.addrs(), id, true, 3600, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cl.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "load/#", QoS: qos}}}); err != nil {
			t.Fatalf("subscribe %s: %v", id, err)
		}
		_ = cl.Disconnect(&paho.Disconnect{})
	}

	pubs := []*counter{
		{name: "pub-q1", addrs: c.addrs(), topic: "load/q1", qos: 1},
		{name: "pub-q2", addrs: c.addrs(), topic: "load/q2", qos: 2},
	}
	pctx, stopPubs := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Add(1)
		go func() { defer wg.Done(); p.run(pctx) }()
	}
	waitAcked := func(n int) {
		t.Helper()
		for _, p := range pubs {
			poll.Wait(t, 60*time.Second, 20*time.Millisecond, fmt.Sprintf("%s to reach %d acknowledgements", p.name, n), func() bool {
				return p.ackedCount() >= n
			})
		}
	}
	var failovers []time.Duration
	for k := 1; k <= kills; k++ {
		waitAcked(50 * k)
		l := c.leader(30 * time.Second)
		t0 := time.Now()
		c.members[l].killNow()
		nl := c.leader(30 * time.Second)
		failovers = append(failovers, time.Since(t0))
		if nl == l {
			t.Fatal("the killed member serves")
		}
		c.start(l) // it rejoins as a follower
	}
	waitAcked(50*kills + 50)
	stopPubs()
	wg.Wait()
	t.Logf("failover times (kill -9 to a new leader serving): %v", failovers)

	// The subscribers come back and drain their queues.
	for id, qos := range subs {
		r := &receiver{last: time.Now()}
		cl, ack, _, err := dialAny(ctx, c.addrs(), id, false, 3600, r.on)
		if err != nil {
			t.Fatal(err)
		}
		if !ack.SessionPresent {
			t.Fatalf("%s: the session was not remembered", id)
		}
		poll.Wait(t, 60*time.Second, 50*time.Millisecond, id+" to drain its queue", func() bool { return r.quietFor(2 * time.Second) })
		_ = cl.Disconnect(&paho.Disconnect{})
		for _, p := range pubs {
			if (p.qos == 2) == (qos == 2) || qos == 1 {
				r.check(t, id, p, qos == 2 && p.qos == 2)
			}
		}
	}
}
