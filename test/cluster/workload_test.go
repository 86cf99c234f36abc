package cluster_test

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history"
	"github.com/bollard-io/bollard/test/history/mqttclient"
	"github.com/bollard-io/bollard/test/poll"
)

// workload is the clients of a scenario, recording into one history:
// publishers at QoS 1 and QoS 2 (window 1, counting acknowledgements),
// and persistent subscribers at QoS 1 and QoS 2 to every publisher, one
// of each online throughout and one of each offline until the end.
type workload struct {
	t       *testing.T
	c       *testCluster
	rec     *history.Recorder
	pubs    []*mqttclient.Publisher
	online  []*mqttclient.Subscriber
	offline []*mqttclient.Subscriber

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// workloadConfig shapes a workload.
type workloadConfig struct {
	// perQoS is the number of publishers at each of QoS 1 and 2.
	perQoS int
	// online, offline: subscribers per QoS (1 and 2) of each kind.
	online, offline int
}

var defaultWorkload = workloadConfig{perQoS: 1, online: 1, offline: 1}

// startWorkload subscribes the persistent sessions (the offline ones go
// offline at once) and starts the publishers.
func startWorkload(t *testing.T, c *testCluster, cfg workloadConfig) *workload {
	t.Helper()
	w := &workload{t: t, c: c, rec: history.NewRecorder()}
	var ids []string
	for _, qos := range []byte{1, 2} {
		for k := range cfg.perQoS {
			id := fmt.Sprintf("p%d-%d", qos, k)
			ids = append(ids, id)
			p, err := mqttclient.NewPublisher(w.rec, mqttclient.PublisherConfig{
				ID: id, Topic: "load/" + id, QoS: qos, Addrs: c.addrs(),
			})
			if err != nil {
				t.Fatal(err)
			}
			w.pubs = append(w.pubs, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub := func(id string, qos byte) *mqttclient.Subscriber {
		s, err := mqttclient.StartSubscriber(ctx, w.rec, mqttclient.SubscriberConfig{
			ClientID: id, Filter: "load/#", QoS: qos, Expiry: 3600, Addrs: c.addrs(), Publishers: ids,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	for _, qos := range []byte{1, 2} {
		for k := range cfg.online {
			w.online = append(w.online, sub(fmt.Sprintf("on%d-%d", qos, k), qos))
		}
		for k := range cfg.offline {
			s := sub(fmt.Sprintf("off%d-%d", qos, k), qos)
			if err := s.Offline(ctx); err != nil {
				t.Fatal(err)
			}
			w.offline = append(w.offline, s)
		}
	}
	pctx, pcancel := context.WithCancel(context.Background())
	w.cancel = pcancel
	for _, p := range w.pubs {
		w.wg.Go(func() {
			if err := p.Run(pctx); err != nil {
				t.Errorf("publisher %s: %v", p.ID(), err)
			}
		})
	}
	t.Cleanup(w.stop)
	return w
}

// stop stops the publishers and waits for them.
func (w *workload) stop() {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
	})
}

// acked is the total of acknowledged publishes.
func (w *workload) acked() uint64 {
	var n uint64
	for _, p := range w.pubs {
		n += p.Stats().Acked
	}
	return n
}

// waitAcked waits until every publisher has n more acknowledgements than
// now.
func (w *workload) waitAcked(n uint64, d time.Duration) {
	w.t.Helper()
	base := make([]uint64, len(w.pubs))
	for i, p := range w.pubs {
		base[i] = p.Stats().Acked
	}
	poll.Wait(w.t, d, 10*time.Millisecond, fmt.Sprintf("every publisher to have %d more acknowledgements", n), func() bool {
		for i, p := range w.pubs {
			if p.Stats().Acked < base[i]+n {
				return false
			}
		}
		return true
	})
}

// subscribers is every subscriber, online ones first.
func (w *workload) subscribers() []*mqttclient.Subscriber {
	return append(slices.Clone(w.online), w.offline...)
}

// finish stops the publishers, brings the offline subscribers online,
// waits until every expected delivery arrived (or d passed) and nothing
// more comes, and checks the history. It returns the report.
func (w *workload) finish(d time.Duration) history.Report {
	w.t.Helper()
	w.stop()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for _, s := range w.offline {
		if err := s.Online(ctx); err != nil {
			w.t.Fatal(err)
		}
	}
	w.settle(ctx)
	for _, s := range w.subscribers() {
		if err := s.Close(); err != nil {
			w.t.Errorf("closing %s: %v", s.ClientID(), err)
		}
	}
	rep := w.rec.Check()
	w.t.Logf("history: %s", rep.Summary())
	w.logClients()
	logOddities(w.t, w.rec.History())
	if !rep.OK() {
		w.t.Errorf("the history breaks the broker's promises:\n%s", rep)
		w.logSpans()
	}
	if rep.Acked == 0 || rep.Expected == 0 || rep.Received == 0 {
		w.t.Errorf("an empty run proves nothing: %s", rep.Summary())
	}
	return rep
}

// settle waits until every expected delivery arrived and then for a
// quiet moment (a redelivery arriving late would be a duplicate).
func (w *workload) settle(ctx context.Context) {
	w.t.Helper()
	var rep history.Report
	err := poll.Until(ctx, time.Until(deadline(ctx)), 50*time.Millisecond, func(context.Context) error {
		rep = w.rec.Check()
		if rep.Received < rep.Expected {
			return fmt.Errorf("%d of %d expected deliveries arrived", rep.Received, rep.Expected)
		}
		return nil
	})
	if err != nil {
		w.t.Errorf("waiting for the deliveries: %v", err)
		return
	}
	last, since := rep.Deliveries, time.Now()
	_ = poll.Until(ctx, time.Until(deadline(ctx)), 50*time.Millisecond, poll.Bool(func() bool {
		if n := len(w.rec.History().Deliveries); n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= 500*time.Millisecond
	}))
}

func deadline(ctx context.Context) time.Time {
	d, ok := ctx.Deadline()
	if !ok {
		return time.Now().Add(time.Minute)
	}
	return d
}

// logClients logs each client's counts and connections.
func (w *workload) logClients() {
	for _, p := range w.pubs {
		s := p.Stats()
		w.t.Logf("%s: sent %d, acknowledged %d, failed %d, unknown %d; %s", p.ID(), s.Sent, s.Acked, s.Failed, s.Unknown, spanSummary(p.Spans(), s.ConnStats))
	}
	for _, s := range w.subscribers() {
		st := s.Stats()
		w.t.Logf("%s: received %d, sessions lost %d; %s", s.ClientID(), st.Received, st.SessionsLost, spanSummary(s.Spans(), st.ConnStats))
	}
}

// logOddities logs, in brief, what the history allows but a reader of
// the run wants to see: refused publishes and redeliveries.
func logOddities(t *testing.T, h history.History) {
	failed := map[string]int{}
	var firstFail, lastFail time.Time
	for _, a := range h.Attempts {
		if a.Outcome == history.Failed {
			failed[a.Server+" "+a.Detail]++
			if firstFail.IsZero() {
				firstFail = a.Settled
			}
			lastFail = a.Settled
		}
	}
	for k, n := range failed {
		t.Logf("refused publishes: %d from %s (%s to %s)", n, k, firstFail.Format("15:04:05.000"), lastFail.Format("15:04:05.000"))
	}
	type key struct {
		sub, pub string
		seq      uint64
	}
	seen := map[key][]history.Delivery{}
	for _, d := range h.Deliveries {
		k := key{d.Subscriber, d.Publisher, d.Seq}
		seen[k] = append(seen[k], d)
	}
	n := 0
	for _, d := range h.Deliveries {
		ds := seen[key{d.Subscriber, d.Publisher, d.Seq}]
		if len(ds) < 2 || ds[0] != d {
			continue
		}
		if n++; n <= 5 {
			var at []string
			for _, x := range ds {
				at = append(at, fmt.Sprintf("%s dup=%v", x.Received.Format("15:04:05.000"), x.Dup))
			}
			t.Logf("redelivered: pub-%s/%d to %s at QoS %d: %s", d.Publisher, d.Seq, d.Subscriber, d.QoS, strings.Join(at, ", "))
		}
	}
}

// logSpans logs every connection of every client.
func (w *workload) logSpans() {
	for _, p := range w.pubs {
		for _, sp := range p.Spans() {
			w.t.Logf("%s: %s", p.ID(), spanString(sp))
		}
	}
	for _, s := range w.subscribers() {
		for _, sp := range s.Spans() {
			w.t.Logf("%s: %s", s.ClientID(), spanString(sp))
		}
	}
}

func spanString(sp mqttclient.Span) string {
	end := "open"
	switch {
	case sp.Down.IsZero():
	case sp.ServerDisconnect:
		end = fmt.Sprintf("%s DISCONNECT 0x%02X %q", sp.Down.Format("15:04:05.000"), sp.ReasonCode, sp.ServerReference)
	case sp.ByClient:
		end = sp.Down.Format("15:04:05.000") + " by the client"
	default:
		end = sp.Down.Format("15:04:05.000") + " lost"
	}
	return fmt.Sprintf("%s from %s to %s", sp.Addr, sp.Up.Format("15:04:05.000"), end)
}

func spanSummary(spans []mqttclient.Span, cs mqttclient.ConnStats) string {
	var ends []string
	for _, sp := range spans {
		switch {
		case sp.Down.IsZero():
		case sp.ServerDisconnect:
			ends = append(ends, fmt.Sprintf("DISCONNECT 0x%02X", sp.ReasonCode))
		case sp.ByClient:
			ends = append(ends, "by the client")
		default:
			ends = append(ends, "lost")
		}
	}
	return fmt.Sprintf("%d connections (%d redirects followed, %d rounds failed), ends: %s",
		cs.Connects, cs.Redirects, cs.ConnectFailures, strings.Join(ends, ", "))
}

// outage is a client's time without a connection: from a span's end to
// the next span's start.
type outage struct {
	client   string
	from     string // the address of the connection that ended
	to       string // the address of the next one
	ref      string // the Server Reference of the server's DISCONNECT
	at       time.Time
	length   time.Duration
	byServer bool // the server sent DISCONNECT
	reason   byte
}

// outages lists the connections of a client that ended without the client
// asking, each with the time until the next connection (to the end of
// spans: until now, when there is none).
func outages(client string, spans []mqttclient.Span) []outage {
	var out []outage
	for k, sp := range spans {
		if sp.Down.IsZero() || sp.ByClient {
			continue
		}
		o := outage{client: client, from: sp.Addr, at: sp.Down, byServer: sp.ServerDisconnect, reason: sp.ReasonCode, ref: sp.ServerReference}
		if k+1 < len(spans) {
			o.to, o.length = spans[k+1].Addr, spans[k+1].Up.Sub(sp.Down)
		} else {
			o.length = time.Since(sp.Down)
		}
		out = append(out, o)
	}
	return out
}

// clientOutages is the outages of every online client of w (publishers
// and online subscribers).
func (w *workload) clientOutages() []outage {
	var out []outage
	for _, p := range w.pubs {
		out = append(out, outages(p.ID(), p.Spans())...)
	}
	for _, s := range w.online {
		out = append(out, outages(s.ClientID(), s.Spans())...)
	}
	return out
}

// durations summarises a sample: min, p50, p99, max.
func durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no sample"
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("n=%d min %s p50 %s p99 %s max %s", len(s),
		s[0].Round(time.Millisecond), pct(s, 50).Round(time.Millisecond), pct(s, 99).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// pct is the p-th percentile of a sorted sample (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}
