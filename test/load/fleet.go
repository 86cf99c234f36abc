package load

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// Fleet scale: many persistent devices, each with one subscription, that
// (re)connect together (a connect storm, as after a network outage) and
// otherwise stay offline.

// stormScenario: StormClients persistent clients connect StormConcurrency
// at a time, each subscribing to its own command topic and disconnecting;
// then they all reconnect the same way, resuming their sessions; then the
// broker restarts with them offline. RSS per session is the growth over
// the fresh broker's RSS, divided by the sessions.
func stormScenario(sz Sizes) scenario {
	name := fmt.Sprintf("connect storm: %s persistent clients, %d at a time", withThousands(int64(sz.StormClients)), sz.StormConcurrency)
	half := func(metric string) Row {
		return Row{Metric: metric, Unit: "sessions/s", Goal: RatioAtLeast, Limit: 0.5,
			Note: "Bollard stores each session and subscription before CONNACK/SUBACK (sync mode: fsynced); mosquitto does not fsync"}
	}
	return scenario{
		name: name, repeat: sz.Repeat, primary: "create",
		metrics: []metric{
			{"create", half("new sessions (CONNECT, SUBSCRIBE, DISCONNECT)")},
			{"resume", half("resumed sessions (same, session present)")},
			{"kb", Row{Metric: "RSS per offline session after the storm", Unit: "KB"}},
			{"ready", Row{Metric: "start to ready with the sessions", Unit: "s"}},
			{"kb2", Row{Metric: "RSS per offline session after restart", Unit: "KB"}},
		},
		run: runStorm,
	}
}

func runStorm(ctx context.Context, t Target, sz Sizes) (measurement, error) {
	n := sz.StormClients
	spec := SessionSpec{Prefix: "load-storm", Count: n, Filter: func(i int) string { return fmt.Sprintf("fleet/load-storm-%d/cmd", i) }}
	m := measurement{}
	rss0 := rssOf(t)
	begin := time.Now()
	if err := createSessionsWith(ctx, t.Addr(), spec, sz.StormConcurrency, false); err != nil {
		return nil, err
	}
	m["create"] = float64(n) / time.Since(begin).Seconds()
	perSession(m, "kb", rss0, rssOf(t), n)
	begin = time.Now()
	if err := createSessionsWith(ctx, t.Addr(), spec, sz.StormConcurrency, true); err != nil {
		return m, err
	}
	m["resume"] = float64(n) / time.Since(begin).Seconds()
	if err := t.Stop(ctx); err != nil {
		return m, err
	}
	ready, err := t.Start(ctx)
	if err != nil {
		return m, err
	}
	m["ready"] = ready.Seconds()
	perSession(m, "kb2", rss0, rssOf(t), n)
	return m, nil
}

// rssOf is the resident set of t's process in bytes, 0 when unknown (a
// broker in this process).
func rssOf(t Target) int64 {
	if t.PID() == 0 {
		return 0
	}
	mem, err := ReadMemory(t.PID())
	if err != nil {
		return 0
	}
	return mem.RSS
}

// perSession records (rss-rss0)/n in KB under key, when both are known.
func perSession(m measurement, key string, rss0, rss int64, n int) {
	if rss0 > 0 && rss > rss0 && n > 0 {
		m[key] = float64(rss-rss0) / float64(n) / 1024
	}
}

// createSessionsWith runs createSession for every session of spec,
// workers at a time; resume requires the broker to report each session
// present.
func createSessionsWith(ctx context.Context, addr string, spec SessionSpec, workers int, resume bool) error {
	var next atomic.Int64
	var g group
	for range min(workers, spec.Count) {
		g.Go(func() error {
			for i := int(next.Add(1) - 1); i < spec.Count; i = int(next.Add(1) - 1) {
				present, err := createSession(ctx, addr, spec.id(i), spec.Filter(i))
				if err != nil {
					return err
				}
				if resume && !present {
					return fmt.Errorf("load: %s: session not present on reconnection", spec.id(i))
				}
			}
			return nil
		})
	}
	return g.Wait()
}

// FleetClientID is the client ID of device i of a fleet store.
func FleetClientID(i int) string { return fmt.Sprintf("device-%07d", i) }

// FleetFilter is the one subscription of a fleet device.
func FleetFilter(id string) string { return "fleet/" + id + "/cmd" }

// WriteFleetStore adds n offline persistent MQTT 3.1.1 sessions to the
// Bollard store in dir (created if missing), each subscribed at QoS 1 to
// FleetFilter: a fleet's store without creating a million sessions over
// MQTT. The broker must not be running on dir.
func WriteFleetStore(dir string, n int) error {
	st, err := pebblestore.Open(dir, pebblestore.Options{})
	if err != nil {
		return err
	}
	now := time.Now()
	for i := 0; i < n; {
		b := &store.Batch{NoSync: true}
		for k := 0; k < 1000 && i < n; k, i = k+1, i+1 {
			id := FleetClientID(i)
			b.PutSession(&store.Session{ClientID: id, ProtocolVersion: 4, ExpiryInterval: 7 * 24 * 3600, CreatedAt: now, DisconnectedAt: now})
			b.PutSubscription(id, &store.Subscription{Filter: FleetFilter(id), QoS: 1})
		}
		if err := st.Commit(context.Background(), b); err != nil {
			return errors.Join(err, st.Close())
		}
	}
	return st.Close()
}
