//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

// traffic is the load of scenarios 2 and 3: two persistent subscribers
// (QoS 1 and QoS 2) offline for the whole run, and two publishers (QoS 1
// and QoS 2, one topic each) that reconnect whenever the broker goes away.
type traffic struct {
	addr, base string
	pubs       []*publisher
	cancel     context.CancelFunc
	wg         sync.WaitGroup
}

// subscriber client IDs and their subscription QoS.
var trafficSubs = []struct {
	suffix string
	qos    byte
}{{"sub-qos1", 1}, {"sub-qos2", 2}}

func startTraffic(t *testing.T, addr, base string) *traffic {
	t.Helper()
	tr := &traffic{addr: addr, base: base}
	for _, s := range trafficSubs {
		if err := mqtttest.SubscribeOffline(t.Context(), addr, base+"-"+s.suffix, base+"/#", s.qos, 3600); err != nil {
			t.Fatal(err)
		}
	}
	for _, qos := range []byte{1, 2} {
		tr.pubs = append(tr.pubs, &publisher{
			addr: addr, clientID: fmt.Sprintf("%s-pub-qos%d", base, qos), topic: fmt.Sprintf("%s/qos%d", base, qos), qos: qos,
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	for _, p := range tr.pubs {
		tr.wg.Add(1)
		go func() { defer tr.wg.Done(); p.run(ctx) }()
	}
	t.Cleanup(tr.stop)
	return tr
}

// waitProgress waits until every publisher has n more acknowledged
// messages than now.
func (tr *traffic) waitProgress(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	base := make([]int, len(tr.pubs))
	for i, p := range tr.pubs {
		_, base[i], _, _ = p.stats()
	}
	eventually(t, timeout, fmt.Sprintf("%d more acknowledged publishes each", n), func(context.Context) (bool, error) {
		for i, p := range tr.pubs {
			if _, acked, _, _ := p.stats(); acked < base[i]+n {
				return false, fmt.Errorf("%s: %d acknowledged", p.clientID, acked)
			}
		}
		return true, nil
	})
}

func (tr *traffic) stop() {
	tr.cancel()
	tr.wg.Wait()
}

// verify stops publishing, brings the subscribers back, and checks that
// every acknowledged message reached both, and that the QoS 2 subscriber got
// each QoS 2 message exactly once. It logs the counts.
func (tr *traffic) verify(t *testing.T, scenario string) {
	t.Helper()
	tr.stop()
	acked := map[string][]int{}
	for _, p := range tr.pubs {
		acked[p.topic] = p.ackedSeqs()
		sent, n, failed, reconnects := p.stats()
		t.Logf("%s: %s (QoS %d): sent %d, acknowledged %d, failed %d, reconnects %d",
			scenario, p.clientID, p.qos, sent, n, failed, reconnects)
	}
	for _, s := range trafficSubs {
		tr.drain(t, scenario, s.suffix, s.qos, acked)
	}
}

func (tr *traffic) drain(t *testing.T, scenario, suffix string, qos byte, acked map[string][]int) {
	t.Helper()
	box := newInbox()
	c, ack, err := mqtttest.Dial(t.Context(), tr.addr, tr.base+"-"+suffix, false, 3600, box.add)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(&paho.Disconnect{}) //nolint:errcheck // best effort
	if !ack.SessionPresent {
		t.Fatalf("%s: session of %s lost (session present = false)", scenario, suffix)
	}
	var missing int
	eventually(t, 60*time.Second, suffix+" receives every acknowledged message", func(context.Context) (bool, error) {
		if missing = box.check(acked); missing == 0 {
			return true, nil
		}
		return false, fmt.Errorf("%d acknowledged messages missing, %d received", missing, box.count())
	})
	// Let redeliveries that would be duplicates arrive before counting them.
	eventually(t, 30*time.Second, suffix+" quiet for 500ms", func(context.Context) (bool, error) {
		return box.quietFor(500 * time.Millisecond), nil
	})
	missing = box.check(acked)
	qos2Topic := tr.base + "/qos2"
	dups := box.dupsOn(qos2Topic)
	t.Logf("%s: %s: received %d messages, %d acknowledged missing (lost), %d duplicates of QoS 2 messages, %d duplicates in all, %d out of order",
		scenario, suffix, box.count(), missing, dups, box.dupsAll(), box.outOfOrder())
	if n := box.outOfOrder(); n > 0 {
		t.Errorf("%s: %s received %d messages out of per-topic publish order", scenario, suffix, n)
	}
	if qos == 2 && dups > 0 {
		t.Errorf("%s: %s received %d QoS 2 messages more than once", scenario, suffix, dups)
	}
	if len(box.errors) > 0 {
		t.Errorf("%s: %s: %v", scenario, suffix, box.errors)
	}
}
