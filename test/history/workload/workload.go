// Package workload runs the clients of an end-to-end scenario against a
// broker (one address, a cluster's member addresses, or a Service's) and
// checks what they saw with package history: counting publishers at QoS 1
// and QoS 2 (window 1), persistent subscribers at QoS 1 and QoS 2 to every
// publisher, some online throughout and some offline until the end. It
// also measures each client's connections: how often the broker or the
// network ended one, and how long the client went without (Outages).
//
// Both tiers that kill brokers use it: test/cluster (member processes on
// loopback) and test/e2e (brokers as pods, through their Service).
package workload

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history"
	"github.com/bollard-io/bollard/test/history/mqttclient"
	"github.com/bollard-io/bollard/test/poll"
)

// Workload is the clients of a scenario, recording into one history:
// publishers at QoS 1 and QoS 2 (window 1, counting acknowledgements),
// and persistent subscribers at QoS 1 and QoS 2 to every publisher, one
// of each online throughout and one of each offline until the end.
type Workload struct {
	// Rec is the history every client records into.
	Rec *history.Recorder
	// Pubs are the publishers; Online the subscribers online throughout,
	// Offline those offline until Finish.
	Pubs    []*mqttclient.Publisher
	Online  []*mqttclient.Subscriber
	Offline []*mqttclient.Subscriber

	t *testing.T

	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Config shapes a Workload.
type Config struct {
	// PerQoS is the number of publishers at each of QoS 1 and 2.
	PerQoS int
	// Online, Offline: subscribers per QoS (1 and 2) of each kind.
	Online, Offline int
}

// Default is one publisher and one online and one offline subscriber at
// each QoS.
var Default = Config{PerQoS: 1, Online: 1, Offline: 1}

// Start subscribes the persistent sessions at addrs (the offline ones go
// offline at once) and starts the publishers. The clients connect through
// addrs in turn and follow redirections (see mqttclient).
func Start(t *testing.T, addrs []string, cfg Config) *Workload {
	t.Helper()
	w := &Workload{t: t, Rec: history.NewRecorder()}
	var ids []string
	for _, qos := range []byte{1, 2} {
		for k := range cfg.PerQoS {
			id := fmt.Sprintf("p%d-%d", qos, k)
			ids = append(ids, id)
			p, err := mqttclient.NewPublisher(w.Rec, mqttclient.PublisherConfig{
				ID: id, Topic: "load/" + id, QoS: qos, Addrs: addrs,
			})
			if err != nil {
				t.Fatal(err)
			}
			w.Pubs = append(w.Pubs, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	sub := func(id string, qos byte) *mqttclient.Subscriber {
		s, err := mqttclient.StartSubscriber(ctx, w.Rec, mqttclient.SubscriberConfig{
			ClientID: id, Filter: "load/#", QoS: qos, Expiry: 3600, Addrs: addrs, Publishers: ids,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	for _, qos := range []byte{1, 2} {
		for k := range cfg.Online {
			w.Online = append(w.Online, sub(fmt.Sprintf("on%d-%d", qos, k), qos))
		}
		for k := range cfg.Offline {
			s := sub(fmt.Sprintf("off%d-%d", qos, k), qos)
			if err := s.Offline(ctx); err != nil {
				t.Fatal(err)
			}
			w.Offline = append(w.Offline, s)
		}
	}
	pctx, pcancel := context.WithCancel(context.Background())
	w.cancel = pcancel
	for _, p := range w.Pubs {
		w.wg.Go(func() {
			if err := p.Run(pctx); err != nil {
				t.Errorf("publisher %s: %v", p.ID(), err)
			}
		})
	}
	t.Cleanup(w.Stop)
	return w
}

// Stop stops the publishers and waits for them.
func (w *Workload) Stop() {
	w.once.Do(func() {
		w.cancel()
		w.wg.Wait()
	})
}

// Acked is the total of acknowledged publishes.
func (w *Workload) Acked() uint64 {
	var n uint64
	for _, p := range w.Pubs {
		n += p.Stats().Acked
	}
	return n
}

// WaitAcked waits until every publisher has n more acknowledgements than
// now.
func (w *Workload) WaitAcked(n uint64, d time.Duration) {
	w.t.Helper()
	base := make([]uint64, len(w.Pubs))
	for i, p := range w.Pubs {
		base[i] = p.Stats().Acked
	}
	poll.Wait(w.t, d, 10*time.Millisecond, fmt.Sprintf("every publisher to have %d more acknowledgements", n), func() bool {
		for i, p := range w.Pubs {
			if p.Stats().Acked < base[i]+n {
				return false
			}
		}
		return true
	})
}

// WaitProgress waits until the publishers together have n more
// acknowledgements than now.
func (w *Workload) WaitProgress(n uint64, d time.Duration) {
	w.t.Helper()
	base := w.Acked()
	poll.Wait(w.t, d, time.Millisecond, strconv.FormatUint(n, 10)+" more acknowledgements", func() bool {
		return w.Acked() >= base+n
	})
}

// Subscribers is every subscriber, online ones first.
func (w *Workload) Subscribers() []*mqttclient.Subscriber {
	return append(slices.Clone(w.Online), w.Offline...)
}

// Finish stops the publishers, brings the offline subscribers online,
// waits until every expected delivery arrived (or d passed) and nothing
// more comes, and checks the history. It returns the report.
func (w *Workload) Finish(d time.Duration) history.Report {
	w.t.Helper()
	w.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for _, s := range w.Offline {
		if err := s.Online(ctx); err != nil {
			w.t.Fatal(err)
		}
	}
	w.settle(ctx)
	for _, s := range w.Subscribers() {
		if err := s.Close(); err != nil {
			w.t.Errorf("closing %s: %v", s.ClientID(), err)
		}
	}
	rep := w.Rec.Check()
	w.t.Logf("history: %s", rep.Summary())
	w.LogClients()
	LogOddities(w.t, w.Rec.History())
	if !rep.OK() {
		w.t.Errorf("the history breaks the broker's promises:\n%s", rep)
		w.LogSpans()
	}
	if rep.Acked == 0 || rep.Expected == 0 || rep.Received == 0 {
		w.t.Errorf("an empty run proves nothing: %s", rep.Summary())
	}
	return rep
}

// settle waits until every expected delivery arrived and then for a
// quiet moment (a redelivery arriving late would be a duplicate).
func (w *Workload) settle(ctx context.Context) {
	w.t.Helper()
	var rep history.Report
	err := poll.Until(ctx, time.Until(deadline(ctx)), 50*time.Millisecond, func(context.Context) error {
		rep = w.Rec.Check()
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
		if n := len(w.Rec.History().Deliveries); n != last {
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

// LogClients logs each client's counts and connections.
func (w *Workload) LogClients() {
	for _, p := range w.Pubs {
		s := p.Stats()
		w.t.Logf("%s: sent %d, acknowledged %d, failed %d, unknown %d; %s", p.ID(), s.Sent, s.Acked, s.Failed, s.Unknown, SpanSummary(p.Spans(), s.ConnStats))
	}
	for _, s := range w.Subscribers() {
		st := s.Stats()
		w.t.Logf("%s: received %d, sessions lost %d; %s", s.ClientID(), st.Received, st.SessionsLost, SpanSummary(s.Spans(), st.ConnStats))
	}
}

// LogOddities logs, in brief, what the history allows but a reader of
// the run wants to see: refused publishes and redeliveries.
func LogOddities(t *testing.T, h history.History) {
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

// LogSpans logs every connection of every client.
func (w *Workload) LogSpans() {
	for _, p := range w.Pubs {
		for _, sp := range p.Spans() {
			w.t.Logf("%s: %s", p.ID(), SpanString(sp))
		}
	}
	for _, s := range w.Subscribers() {
		for _, sp := range s.Spans() {
			w.t.Logf("%s: %s", s.ClientID(), SpanString(sp))
		}
	}
}

// SpanString is a connection as a line: where, from when, how it ended.
func SpanString(sp mqttclient.Span) string {
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

// SpanSummary is a client's connections in brief: counts and how each
// ended.
func SpanSummary(spans []mqttclient.Span, cs mqttclient.ConnStats) string {
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

// Outage is a client's time without a connection: from a span's end to
// the next span's start.
type Outage struct {
	Client   string
	From     string // the address of the connection that ended
	To       string // the address of the next one
	Ref      string // the Server Reference of the server's DISCONNECT
	At       time.Time
	Length   time.Duration
	ByServer bool // the server sent DISCONNECT
	Reason   byte
}

// Describe is an outage's cause as a line.
func (o Outage) Describe() string {
	if !o.ByServer {
		return "a lost connection"
	}
	return fmt.Sprintf("DISCONNECT 0x%02X %q", o.Reason, o.Ref)
}

// Outages lists the connections of a client that ended without the client
// asking, each with the time until the next connection (to the end of
// spans: until now, when there is none).
func Outages(client string, spans []mqttclient.Span) []Outage {
	var out []Outage
	for k, sp := range spans {
		if sp.Down.IsZero() || sp.ByClient {
			continue
		}
		o := Outage{Client: client, From: sp.Addr, At: sp.Down, ByServer: sp.ServerDisconnect, Reason: sp.ReasonCode, Ref: sp.ServerReference}
		if k+1 < len(spans) {
			o.To, o.Length = spans[k+1].Addr, spans[k+1].Up.Sub(sp.Down)
		} else {
			o.Length = time.Since(sp.Down)
		}
		out = append(out, o)
	}
	return out
}

// ClientOutages is the outages of every online client of w (publishers
// and online subscribers).
func (w *Workload) ClientOutages() []Outage {
	var out []Outage
	for _, p := range w.Pubs {
		out = append(out, Outages(p.ID(), p.Spans())...)
	}
	for _, s := range w.Online {
		out = append(out, Outages(s.ClientID(), s.Spans())...)
	}
	return out
}

// Durations summarises a sample: min, p50, p99, max.
func Durations(ds []time.Duration) string {
	if len(ds) == 0 {
		return "no sample"
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return fmt.Sprintf("n=%d min %s p50 %s p99 %s max %s", len(s),
		s[0].Round(time.Millisecond), Pct(s, 50).Round(time.Millisecond), Pct(s, 99).Round(time.Millisecond), s[len(s)-1].Round(time.Millisecond))
}

// Pct is the p-th percentile of a sorted sample (nearest rank).
func Pct(sorted []time.Duration, p int) time.Duration {
	rank := (p*len(sorted) + 99) / 100
	return sorted[max(rank, 1)-1]
}
