//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/test/mqtttest"
)

// sensorLimit is the sensors' queue limit before the change; after it
// the limit is afterLimit, under RejectPublish.
const sensorLimit, afterLimit = 10, 4

// TestQueuePolicyChangeUnderLoad: a publisher streams QoS 1 messages to
// an offline sensor session while the sensors' queue policy changes from
// "keep the newest 10" (DropOldest) to "refuse beyond 4" (RejectPublish).
// The change applies without restarting the broker (same pod, container
// and process; ConfigApplied True for the new generation), the publisher's
// connection survives it, and what the broker counts per policy matches
// what the publisher saw exactly: every success beyond the first 10
// dropped the oldest (queue_full), every refusal (0x97) is a
// quota_rejected, and a session of no policy lost nothing.
func TestQueuePolicyChangeUnderLoad(t *testing.T) {
	ns := namespace(t, "qp")
	b := newBroker(ns, "fleet")
	b.Spec.Queues.Policies = []v1alpha1.QueuePolicy{
		{Name: "sensors", ClientID: "sensor-*", MaxQueuedMessages: ptr.To(int64(sensorLimit)),
			OverflowPolicy: v1alpha1.OverflowDropOldest},
		{Name: "actuators", ClientID: "act-*", MaxQueuedMessages: ptr.To(int64(1000)),
			OverflowPolicy: v1alpha1.OverflowRejectPublish},
	}
	createBroker(t, b, 60*time.Second)
	before := brokerPod(t, ns, "fleet")
	pid := testCluster.Agent.PID(ns, "fleet-0", "broker")
	if pid == 0 {
		t.Fatal("no broker process")
	}
	addr, admin := mqttAddr(t, before), adminAddr(t, before)
	ctx := t.Context()
	for id, filter := range map[string]string{"sensor-1": "fleet/sensor", "act-1": "fleet/act", "other": "fleet/#"} {
		if err := mqtttest.SubscribeOffline(ctx, addr, id, filter, 1, 3600); err != nil {
			t.Fatal(err)
		}
	}
	for id, want := range map[string]string{"sensor-1": "sensors", "act-1": "actuators", "other": "default"} {
		if got, err := sessionPolicy(ctx, admin, id); err != nil || got != want {
			t.Fatalf("%s: policy %q (%v), want %q", id, got, err, want)
		}
	}

	load := &codeCounter{addr: addr, clientID: "loader", topic: "fleet/sensor"}
	stopLoad := make(chan struct{})
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { close(stopLoad) }) }
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); load.run(ctx, stopLoad) }()
	defer func() { stop(); wg.Wait() }()
	eventually(t, 30*time.Second, "the sensor queue full and dropping", func(context.Context) (bool, error) {
		ok, _, err := load.counts()
		return ok >= 3*sensorLimit, err
	})

	updateBroker(t, ns, "fleet", func(b *v1alpha1.MQTTBroker) {
		b.Spec.Queues.Policies[0].MaxQueuedMessages = ptr.To(int64(afterLimit))
		b.Spec.Queues.Policies[0].OverflowPolicy = v1alpha1.OverflowRejectPublish
	})
	applied := waitBrokerCondition(t, ns, "fleet", v1alpha1.ConditionConfigApplied, 60*time.Second)
	eventually(t, 30*time.Second, "the broker reports the new generation", func(ctx context.Context) (bool, error) {
		st, err := brokerStatus(ctx, admin)
		if err != nil {
			return false, err
		}
		if st["configGeneration"] != float64(applied.Generation) || st["pendingRestart"] != false {
			return false, fmt.Errorf("status %v, want generation %d and nothing pending", st, applied.Generation)
		}
		return true, nil
	})
	eventually(t, 30*time.Second, "publishes refused under the new policy", func(context.Context) (bool, error) {
		_, refused, err := load.counts()
		return refused >= 20, err
	})
	stop()
	wg.Wait()

	after, err := testCluster.Kube.CoreV1().Pods(ns).Get(ctx, "fleet-0", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if after.UID != before.UID || containerID(after) != containerID(before) ||
		testCluster.Agent.PID(ns, "fleet-0", "broker") != pid || restartCount(after) != restartCount(before) {
		t.Fatalf("the broker restarted: pod %s -> %s, container %s -> %s", before.UID, after.UID,
			containerID(before), containerID(after))
	}
	ok, refused, err := load.counts()
	if err != nil {
		t.Fatal(err)
	}
	if load.reconnects != 0 || !load.switchedOnce() {
		t.Errorf("the publisher reconnected %d times, codes %s: want successes, then only refusals", load.reconnects, load.summary())
	}
	t.Logf("publisher: %d acknowledged, %d refused with 0x97", ok, refused)

	m, err := scrapeMetrics(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	for series, want := range map[string]int{
		`bollard_policy_dropped_messages_total{policy="sensors",reason="queue_full"}`:       ok - sensorLimit,
		`bollard_policy_dropped_messages_total{policy="sensors",reason="quota_rejected"}`:   refused,
		`bollard_policy_queued_messages{policy="sensors"}`:                                  sensorLimit,
		`bollard_policy_dropped_messages_total{policy="default",reason="queue_full"}`:       0,
		`bollard_policy_dropped_messages_total{policy="actuators",reason="quota_rejected"}`: 0,
		// "other" (fleet/#) got every message: a refusal by one queue
		// does not take the message back from the others.
		`bollard_policy_queued_messages{policy="default"}`:        ok + refused,
		`bollard_dropped_messages_total{reason="quota_rejected"}`: refused,
	} {
		got, found := m[series]
		if !found || got != float64(want) {
			t.Errorf("%s = %v (found %v), want %d", series, got, found, want)
		}
	}
	if q, err := queuedMessages(ctx, admin, "sensor-1"); err != nil || q != sensorLimit {
		t.Errorf("sensor-1 queues %d (%v): a refused publish must not change it", q, err)
	}
}

// codeCounter publishes QoS 1 messages to one topic on one connection as
// fast as they are acknowledged and counts the PUBACK reason codes: a
// refusal (0x97 Quota exceeded) is an answer, not an error, so it keeps
// going. It records the order of outcomes in runs. It stops between two
// publishes, so that every publish the broker saw is counted.
type codeCounter struct {
	addr, clientID, topic string

	mu         sync.Mutex
	ok         int
	refused    int
	other      error
	reconnects int
	runs       []string // "ok"/"refused", one per change of outcome
}

func (c *codeCounter) run(ctx context.Context, stop <-chan struct{}) {
	cl, _, err := mqtttest.Dial(ctx, c.addr, c.clientID, true, 0, nil)
	if err != nil {
		c.fail(err)
		return
	}
	defer cl.Disconnect(&paho.Disconnect{}) //nolint:errcheck // best effort
	for seq := 1; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		resp, err := cl.Publish(pctx, &paho.Publish{Topic: c.topic, QoS: 1, Payload: []byte("seq-" + strconv.Itoa(seq))})
		cancel()
		switch {
		case resp != nil && resp.ReasonCode == 0x00:
			c.note("ok")
		case resp != nil && resp.ReasonCode == 0x97:
			c.note("refused")
		default:
			c.fail(fmt.Errorf("publish %d: %w (reason %v)", seq, err, resp))
			return
		}
	}
}

func (c *codeCounter) note(outcome string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if outcome == "ok" {
		c.ok++
	} else {
		c.refused++
	}
	if n := len(c.runs); n == 0 || c.runs[n-1] != outcome {
		c.runs = append(c.runs, outcome)
	}
}

func (c *codeCounter) fail(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.other == nil {
		c.other = err
	}
}

func (c *codeCounter) counts() (ok, refused int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ok, c.refused, c.other
}

// switchedOnce: successes, then only refusals (the policy changed once).
func (c *codeCounter) switchedOnce() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.runs) == 2 && c.runs[0] == "ok" && c.runs[1] == "refused"
}

func (c *codeCounter) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.Join(c.runs, " -> ")
}

// sessionPolicy reads a session's queue policy from the admin endpoint.
func sessionPolicy(ctx context.Context, admin, clientID string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/v1/sessions/"+url.PathEscape(clientID), nil)
	if err != nil {
		return "", err
	}
	var info struct {
		Policy string `json:"policy"`
	}
	err = getJSON(req, &info)
	return info.Policy, err
}

// scrapeMetrics reads the broker's /metrics into series -> value (a
// series is the metric name with its labels, as exposed).
func scrapeMetrics(ctx context.Context, admin string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /metrics: HTTP %d", resp.StatusCode)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("/metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	return out, sc.Err()
}
