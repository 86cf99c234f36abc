package load

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"time"
)

// payloadSize is the message size of every scenario, the same on both
// brokers so that their figures compare.
const payloadSize = 64

// publishWindow is the QoS 1 window of each publisher (the server's
// Receive Maximum caps it).
const publishWindow = 1024

// measurement holds one run's figures by metric key.
type measurement map[string]float64

func (m measurement) String() string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		fmt.Fprintf(&b, "%s=%s ", k, num(m[k]))
	}
	return b.String()
}

// metric maps a measurement key to a report row.
type metric struct {
	key string
	row Row
}

// scenario is one workload, run on a fresh broker of each kind.
type scenario struct {
	name    string
	repeat  int
	primary string // the key that picks the best of repeated runs
	metrics []metric
	run     func(ctx context.Context, t Target, sz Sizes) (measurement, error)
}

func scenarios(sz Sizes) []scenario {
	fan := sz.FanoutSubscribers
	all := []scenario{
		pubsubScenario("1 pub -> 1 sub, QoS 0", sz, 1, 0),
		pubsubScenario("1 pub -> 1 sub, QoS 1", sz, 1, 1),
		pubsubScenario(fmt.Sprintf("1 pub -> %d subs, QoS 0", fan), sz, fan, 0),
		pubsubScenario(fmt.Sprintf("1 pub -> %d subs, QoS 1", fan), sz, fan, 1),
	}
	all = append(all, windowScenarios(sz)...)
	return append(all, ingestScenario(sz), drainScenario(sz), restartScenario(sz), stormScenario(sz))
}

// windowScenarios are the online pub/sub runs with few messages in flight,
// as devices publish: for each publisher window, QoS and shape (1 -> 1, 4
// publishers x 4 subscribers), clean-session subscribers and (QoS 1 and 2,
// whose deliveries a persistent session stores) persistent ones. A
// publisher's window bounds both its messages not yet acknowledged and
// those not yet delivered to every subscriber, so window 1 is one message
// at a time: PUBLISH, delivery, acknowledgement, then the next.
func windowScenarios(sz Sizes) []scenario {
	var out []scenario
	for _, persistent := range []bool{false, true} {
		for _, w := range sz.Windows {
			for _, n := range []int{1, 4} {
				for qos := range byte(3) {
					if persistent && qos == 0 {
						continue // QoS 0 is never stored: the clean rows say it
					}
					out = append(out, windowScenario(sz, w, n, qos, persistent))
				}
			}
		}
	}
	return out
}

func windowScenario(sz Sizes, window, n int, qos byte, persistent bool) scenario {
	shape, rate := "1 pub -> 1 sub", "throughput"
	if n > 1 {
		shape, rate = fmt.Sprintf("%d pubs x %d subs", n, n), "deliveries"
	}
	kind := "clean"
	if persistent {
		kind = "persistent"
	}
	spec := PubSubSpec{
		Publishers: n, Subscribers: n, QoS: qos, Payload: payloadSize,
		Messages: min(sz.WindowMessages*window, sz.WindowMaxMessages),
		Window:   window, AckWindow: window, Persistent: persistent, Timeout: sz.Timeout,
	}
	metrics := []metric{
		{"rate", Row{Metric: rate, Unit: "msg/s", Goal: RatioAtLeast1}},
		{"p50us", Row{Metric: "p50 latency", Unit: "µs", Goal: RatioAtMost1}},
	}
	if persistent {
		// The persistent p50 goal: within one fsync of the clean row's p50
		// (mosquitto does not fsync).
		metrics = append(metrics, metric{"fsync", Row{Metric: "mean fsync during the run", Unit: "µs"}})
	}
	return scenario{
		name: fmt.Sprintf("window %d: %s, QoS %d, %s", window, shape, qos, kind), repeat: sz.Repeat, primary: "rate",
		metrics: metrics,
		run: func(ctx context.Context, t Target, _ Sizes) (measurement, error) {
			before, berr := fsyncTotals(ctx, t)
			m, err := runPubSub(ctx, t, spec)
			if m == nil {
				return m, err
			}
			m["p50us"] = m["p50"] * 1000 // a few dozen µs at window 1: ms would round them away
			if after, aerr := fsyncTotals(ctx, t); berr == nil && aerr == nil && after[1] > before[1] {
				m["fsync"] = (after[0] - before[0]) / (after[1] - before[1]) * 1e6
			}
			return m, err
		},
	}
}

// fsyncReporter is a target that reports its fsyncs (bollard's /metrics).
type fsyncReporter interface {
	FsyncTotals(ctx context.Context) (seconds, count float64, err error)
}

// fsyncTotals returns t's fsync time and count so far, when it reports them.
func fsyncTotals(ctx context.Context, t Target) ([2]float64, error) {
	f, ok := t.(fsyncReporter)
	if !ok {
		return [2]float64{}, errors.ErrUnsupported
	}
	s, n, err := f.FsyncTotals(ctx)
	return [2]float64{s, n}, err
}

// runPubSub runs spec and measures its delivery rate and latency.
func runPubSub(ctx context.Context, t Target, spec PubSubSpec) (measurement, error) {
	r, err := RunPubSub(ctx, t.Addr(), spec)
	if err != nil {
		return nil, err
	}
	if r.Disorder > 0 && spec.QoS > 0 {
		return nil, fmt.Errorf("load: %d messages out of order", r.Disorder)
	}
	return measurement{
		"rate": float64(r.Delivered) / r.Elapsed.Seconds(),
		"p50":  ms(r.P50), "p99": ms(r.P99),
	}, nil
}

func pubsubScenario(name string, sz Sizes, subs int, qos byte) scenario {
	spec := PubSubSpec{
		Subscribers: subs, QoS: qos, Messages: sz.PubSubMessages, Payload: payloadSize,
		Window: sz.PubSubWindow, Timeout: sz.Timeout,
	}
	rate := "throughput"
	if subs > 1 {
		spec.Messages, spec.Window = sz.FanoutMessages, sz.FanoutWindow
		rate = "deliveries"
	}
	return scenario{
		name: name, repeat: sz.Repeat, primary: "rate",
		metrics: []metric{
			{"rate", Row{Metric: rate, Unit: "msg/s", Goal: RatioAtLeast1}},
			{"p50", Row{Metric: "p50 latency", Unit: "ms"}},
			{"p99", Row{Metric: "p99 latency", Unit: "ms", Goal: RatioAtMost1}},
		},
		run: func(ctx context.Context, t Target, _ Sizes) (measurement, error) {
			return runPubSub(ctx, t, spec)
		},
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ingestScenario(sz Sizes) scenario {
	name := fmt.Sprintf("ingest: %d pubs -> %d offline sessions, QoS 1", sz.IngestPublishers, sz.IngestSessions)
	return scenario{
		name: name, repeat: sz.Repeat, primary: "rate",
		metrics: []metric{{"rate", Row{
			Metric: "publish rate (acked)", Unit: "msg/s", Goal: RatioAtLeast1,
			Note: "Bollard acknowledges after fsync (sync mode); mosquitto never fsyncs (it saves its database on shutdown and autosave)",
		}}},
		run: func(ctx context.Context, t Target, sz Sizes) (measurement, error) {
			sessions := SessionSpec{Prefix: "load-in", Count: sz.IngestSessions, Filter: func(int) string { return "load/in/#" }}
			if err := CreateSessions(ctx, t.Addr(), sessions); err != nil {
				return nil, err
			}
			r, err := PublishAll(ctx, t.Addr(), PublishSpec{
				Publishers: sz.IngestPublishers, Messages: sz.IngestMessages, Payload: payloadSize,
				Topics: func(p, _ int) []string { return []string{fmt.Sprintf("load/in/%d", p)} }, Window: publishWindow,
			})
			if err == nil && r.Rejected > 0 {
				err = fmt.Errorf("load: %d publishes rejected", r.Rejected)
			}
			return measurement{"rate": r.Rate()}, err
		},
	}
}

func drainScenario(sz Sizes) scenario {
	name := fmt.Sprintf("drain: %d queued -> 1 reconnecting sub", sz.DrainMessages)
	return scenario{
		name: name, repeat: sz.Repeat, primary: "drain",
		metrics: []metric{
			{"fill", Row{Metric: fmt.Sprintf("queueing rate (%d pubs, acked)", sz.IngestPublishers), Unit: "msg/s"}},
			{"rss", Row{Metric: "RSS with the queue", Unit: "MB"}},
			{"drain", Row{Metric: "drain rate", Unit: "msg/s", Goal: RatioAtLeast1}},
		},
		run: runDrain,
	}
}

func runDrain(ctx context.Context, t Target, sz Sizes) (measurement, error) {
	const id = "load-drain-0"
	sessions := SessionSpec{Prefix: "load-drain", Count: 1, Filter: func(int) string { return "load/dr/#" }}
	if err := CreateSessions(ctx, t.Addr(), sessions); err != nil {
		return nil, err
	}
	fill, err := PublishAll(ctx, t.Addr(), PublishSpec{
		Publishers: sz.IngestPublishers, Messages: sz.DrainMessages, Payload: payloadSize,
		Topics: func(p, _ int) []string { return []string{fmt.Sprintf("load/dr/%d", p)} }, Window: publishWindow,
	})
	if err != nil {
		return nil, err
	}
	m := measurement{"fill": fill.Rate()}
	addMemory(m, t, "rss", "")
	d, err := Drain(ctx, t.Addr(), id, int64(sz.DrainMessages))
	if err != nil {
		return m, err
	}
	if d.Disorder > 0 {
		return m, fmt.Errorf("load: drain: %d messages out of order", d.Disorder)
	}
	m["drain"] = d.Rate()
	return m, nil
}

// heapReporter is a target that reports its Go heap (bollard's /metrics).
type heapReporter interface {
	HeapInUse(ctx context.Context) (int64, error)
}

// addHeap records the Go heap in use of t, when it reports it.
func addHeap(ctx context.Context, m measurement, t Target, key string) {
	if h, ok := t.(heapReporter); ok {
		if v, err := h.HeapInUse(ctx); err == nil {
			m[key] = float64(v) / 1e6
		}
	}
}

// writeHeapProfile writes the Go heap profile to $LOAD_HEAPPROFILE-<name>
// when the broker runs in this process (LOAD_BOLLARD=inprocess): what the
// broker holds at that point of a scenario.
func writeHeapProfile(t Target, name string) error {
	path := os.Getenv("LOAD_HEAPPROFILE")
	if path == "" || t.Name() != "bollard" || t.PID() != 0 {
		return nil
	}
	f, err := os.Create(path + "-" + name)
	if err != nil {
		return fmt.Errorf("load: heap profile: %w", err)
	}
	runtime.GC()
	return errors.Join(pprof.WriteHeapProfile(f), f.Close())
}

// addMemory records the resident set of t's process, when it has one.
func addMemory(m measurement, t Target, rssKey, peakKey string) {
	if t.PID() == 0 {
		return
	}
	mem, err := ReadMemory(t.PID())
	if err != nil {
		return
	}
	m[rssKey] = float64(mem.RSS) / 1e6
	if peakKey != "" {
		m[peakKey] = float64(mem.Peak) / 1e6
	}
}

func restartScenario(sz Sizes) scenario {
	total := sz.RestartSessions * sz.RestartPerSession
	name := fmt.Sprintf("restart: %s queued in %s sessions", withThousands(int64(total)), withThousands(int64(sz.RestartSessions)))
	return scenario{
		name: name, primary: "fill",
		metrics: []metric{
			{"fill", Row{Metric: "queueing rate (deliveries)", Unit: "msg/s"}},
			{"rss", Row{Metric: "RSS with the queues", Unit: "MB", Goal: BelowLimit, Limit: 100}},
			{"peak", Row{Metric: "peak RSS (VmHWM) while queueing", Unit: "MB"}},
			{"heap", Row{Metric: "Go heap in use with the queues", Unit: "MB"}},
			{"stop", Row{Metric: "graceful stop", Unit: "s"}},
			{"ready", Row{Metric: "start to ready", Unit: "s", Goal: BelowLimit, Limit: 3}},
			{"rss2", Row{Metric: "RSS after restart", Unit: "MB", Goal: BelowLimit, Limit: 100}},
		},
		run: runRestart,
	}
}

// restartGroups is how many topics the restart sessions spread over; each
// published message is queued for RestartSessions/restartGroups sessions.
const restartGroups = 100

func runRestart(ctx context.Context, t Target, sz Sizes) (measurement, error) {
	groups := min(restartGroups, sz.RestartSessions)
	topic := func(g int) string { return fmt.Sprintf("load/rs/%d", g) }
	sessions := SessionSpec{Prefix: "load-rs", Count: sz.RestartSessions, Filter: func(i int) string { return topic(i % groups) }}
	if err := CreateSessions(ctx, t.Addr(), sessions); err != nil {
		return nil, err
	}
	msgs := groups * sz.RestartPerSession
	fill, err := PublishAll(ctx, t.Addr(), PublishSpec{
		Publishers: sz.IngestPublishers, Messages: msgs, Payload: payloadSize, Window: publishWindow,
		Topics: func(_, first int) []string { // message k of the run goes to group k % groups
			ts := make([]string, groups)
			for g := range ts {
				ts[g] = topic((first + g) % groups)
			}
			return ts
		},
	})
	if err != nil {
		return nil, err
	}
	perMsg := float64(sz.RestartSessions / groups)
	m := measurement{"fill": fill.Rate() * perMsg}
	addMemory(m, t, "rss", "peak")
	addHeap(ctx, m, t, "heap")
	if err := writeHeapProfile(t, "restart"); err != nil {
		return m, err
	}
	return m, restart(ctx, t, m, sessions.id(0), int64(sz.RestartPerSession))
}

// restart stops t gracefully, starts it again, and checks that one
// session kept its queue.
func restart(ctx context.Context, t Target, m measurement, id string, want int64) error {
	begin := time.Now()
	if err := t.Stop(ctx); err != nil {
		return err
	}
	m["stop"] = time.Since(begin).Seconds()
	ready, err := t.Start(ctx)
	if err != nil {
		return err
	}
	m["ready"] = ready.Seconds()
	addMemory(m, t, "rss2", "")
	if _, err := Drain(ctx, t.Addr(), id, want); err != nil {
		return errors.Join(errors.New("load: queue not intact after restart"), err)
	}
	return nil
}
