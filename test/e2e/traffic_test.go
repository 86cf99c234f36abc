//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history"
	"github.com/bollard-io/bollard/test/history/mqttclient"
)

// traffic is the load of scenarios 2 and 3: two persistent subscribers
// (QoS 1 and QoS 2) offline for the whole run, and two publishers (QoS 1
// and QoS 2, one topic each) that reconnect whenever the broker goes away.
// Everything is recorded in a history and checked by test/history.
type traffic struct {
	rec    *history.Recorder
	subs   []*mqttclient.Subscriber
	pubs   []*mqttclient.Publisher
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// subscriber client ID suffixes and their subscription QoS.
var trafficSubs = []struct {
	suffix string
	qos    byte
}{{"sub-qos1", 1}, {"sub-qos2", 2}}

func startTraffic(t *testing.T, addr, base string) *traffic {
	t.Helper()
	tr := &traffic{rec: history.NewRecorder()}
	var ids []string
	for _, qos := range []byte{1, 2} {
		p, err := mqttclient.NewPublisher(tr.rec, mqttclient.PublisherConfig{
			ID: fmt.Sprintf("%s-pub-qos%d", base, qos), Topic: fmt.Sprintf("%s/qos%d", base, qos), QoS: qos, Addrs: []string{addr},
		})
		if err != nil {
			t.Fatal(err)
		}
		tr.pubs = append(tr.pubs, p)
		ids = append(ids, p.ID())
	}
	for _, s := range trafficSubs {
		sub, err := mqttclient.StartSubscriber(t.Context(), tr.rec, mqttclient.SubscriberConfig{
			ClientID: base + "-" + s.suffix, Filter: base + "/#", QoS: s.qos, Expiry: 3600, Addrs: []string{addr}, Publishers: ids,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = sub.Close() }) // leaves the session on the broker
		if err := sub.Offline(t.Context()); err != nil {
			t.Fatal(err)
		}
		tr.subs = append(tr.subs, sub)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tr.cancel = cancel
	for _, p := range tr.pubs {
		tr.wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				t.Errorf("%s: %v", p.ID(), err)
			}
		})
	}
	t.Cleanup(tr.stop)
	return tr
}

// waitProgress waits until every publisher has n more acknowledged
// messages than now.
func (tr *traffic) waitProgress(t *testing.T, n int, timeout time.Duration) {
	t.Helper()
	base := make([]uint64, len(tr.pubs))
	for i, p := range tr.pubs {
		base[i] = p.Stats().Acked
	}
	eventually(t, timeout, fmt.Sprintf("%d more acknowledged publishes each", n), func(context.Context) (bool, error) {
		for i, p := range tr.pubs {
			if acked := p.Stats().Acked; acked < base[i]+uint64(n) {
				return false, fmt.Errorf("%s: %d acknowledged", p.ID(), acked)
			}
		}
		return true, nil
	})
}

func (tr *traffic) stop() {
	tr.cancel()
	tr.wg.Wait()
}

// verify stops publishing, brings the subscribers back, and checks the
// history: every acknowledged message reached both subscribers, in
// per-publisher order, and QoS 2 messages exactly once; a subscriber whose
// session is gone is a violation too. It logs the counts.
func (tr *traffic) verify(t *testing.T, scenario string) {
	t.Helper()
	tr.stop()
	for _, p := range tr.pubs {
		s := p.Stats()
		t.Logf("%s: %s: sent %d, acknowledged %d, failed %d, unknown %d, connections %d",
			scenario, p.ID(), s.Sent, s.Acked, s.Failed, s.Unknown, s.Connects)
	}
	for _, s := range tr.subs {
		if err := s.Online(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, 60*time.Second, "the subscribers receive every acknowledged message", func(context.Context) (bool, error) {
		if rep := tr.rec.Check(); rep.Received < rep.Expected {
			return false, fmt.Errorf("%d of %d expected deliveries arrived", rep.Received, rep.Expected)
		}
		return true, nil
	})
	// Let redeliveries that would be duplicates arrive before counting them.
	last, since := -1, time.Now()
	eventually(t, 30*time.Second, "no delivery for 500ms", func(context.Context) (bool, error) {
		if n := tr.rec.Check().Deliveries; n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= 500*time.Millisecond, nil
	})
	rep := tr.rec.Check()
	t.Logf("%s: %s", scenario, rep.Summary())
	if err := rep.Err(); err != nil {
		t.Errorf("%s: %v", scenario, err)
	}
}
