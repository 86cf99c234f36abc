package mqttclient_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/faultproxy"
	"github.com/bollard-io/bollard/test/history"
	"github.com/bollard-io/bollard/test/history/mqttclient"
	"github.com/bollard-io/bollard/test/load"
	"github.com/bollard-io/bollard/test/mqtttest"
	"github.com/bollard-io/bollard/test/poll"
)

// broker runs the Bollard engine in this process (memory store) on a
// free 127.0.0.1 port.
func broker(t *testing.T) string {
	t.Helper()
	b, err := load.NewInProcess("", "none", 100)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := b.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := b.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return b.Addr()
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func redirector(t *testing.T, code byte, ref string, afterConnect bool) *mqtttest.Redirector {
	t.Helper()
	r, err := mqtttest.StartRedirector(code, ref, afterConnect)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func subscriber(t *testing.T, rec *history.Recorder, id string, qos byte, addrs []string, pubs ...string) *mqttclient.Subscriber {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := mqttclient.StartSubscriber(ctx, rec, mqttclient.SubscriberConfig{
		ClientID: id, Filter: "h/#", QoS: qos, Expiry: 3600, Addrs: addrs, Publishers: pubs,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s
}

func publisher(t *testing.T, rec *history.Recorder, id string, qos byte, count uint64, addrs []string) *mqttclient.Publisher {
	t.Helper()
	p, err := mqttclient.NewPublisher(rec, mqttclient.PublisherConfig{
		ID: id, Topic: "h/" + id, QoS: qos, Addrs: addrs, Count: count, PublishTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runAll runs publishers in the background; the returned stop cancels
// them and waits.
func runAll(t *testing.T, pubs ...*mqttclient.Publisher) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

// runToEnd runs publishers that have a Count until they are done.
func runToEnd(t *testing.T, pubs ...*mqttclient.Publisher) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for _, p := range pubs {
		wg.Go(func() {
			if err := p.Run(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		t.Fatal("publishers did not finish within 60s")
	}
}

// settle waits until every expected delivery arrived and nothing more
// arrives for a while (redeliveries that would be duplicates), then
// returns the report.
func settle(t *testing.T, rec *history.Recorder) history.Report {
	t.Helper()
	var rep history.Report
	if err := poll.Until(context.Background(), 60*time.Second, 20*time.Millisecond, func(context.Context) error {
		rep = rec.Check()
		if rep.Received < rep.Expected {
			return fmt.Errorf("%d of %d expected deliveries", rep.Received, rep.Expected)
		}
		return nil
	}); err != nil {
		t.Fatalf("%v\n%s", err, rep)
	}
	last, since := rep.Deliveries, time.Now()
	poll.Wait(t, 30*time.Second, 20*time.Millisecond, "no delivery for 300ms", func() bool {
		if n := rec.Check().Deliveries; n != last {
			last, since = n, time.Now()
		}
		return time.Since(since) >= 300*time.Millisecond
	})
	return rec.Check()
}

func waitAcked(t *testing.T, n uint64, pubs ...*mqttclient.Publisher) {
	t.Helper()
	base := make([]uint64, len(pubs))
	for i, p := range pubs {
		base[i] = p.Stats().Acked
	}
	poll.Wait(t, 30*time.Second, 10*time.Millisecond, fmt.Sprintf("%d more acknowledged each", n), func() bool {
		for i, p := range pubs {
			if p.Stats().Acked < base[i]+n {
				return false
			}
		}
		return true
	})
}

// Clients given a dead address and a follower that answers CONNACK 0x9C
// Use another server reach the broker through the Server Reference, and
// every acknowledged message reaches both subscribers.
func TestConnectThroughServerReference(t *testing.T) {
	addr := broker(t)
	follower := redirector(t, 0x9C, addr, false)
	addrs := []string{deadAddr(t), follower.Addr()}
	rec := history.NewRecorder()
	subscriber(t, rec, "s-qos1", 1, addrs, "p1", "p2")
	subscriber(t, rec, "s-qos2", 2, addrs, "p1", "p2")
	p1 := publisher(t, rec, "p1", 1, 100, addrs)
	p2 := publisher(t, rec, "p2", 2, 100, addrs)
	runToEnd(t, p1, p2)
	rep := settle(t, rec)
	if !rep.OK() || rep.Acked != 200 || rep.Expected != 400 || rep.Received != 400 {
		t.Fatalf("report: %s", rep)
	}
	for _, p := range []*mqttclient.Publisher{p1, p2} {
		if s := p.Stats(); s.Redirects < 1 || s.Sent != 100 || s.Acked != 100 {
			t.Errorf("%s: %+v", p.ID(), s)
		}
	}
	if n := follower.Connects(); n < 4 {
		t.Fatalf("the follower answered %d CONNECTs, want one from each client at least", n)
	}
}

// A leader that hands over sends DISCONNECT 0x9C with a Server
// Reference: the publisher reconnects there.
func TestFollowDisconnectReference(t *testing.T) {
	addr := broker(t)
	leaving := redirector(t, 0x9C, addr, true)
	rec := history.NewRecorder()
	subscriber(t, rec, "s", 2, []string{addr}, "p")
	p := publisher(t, rec, "p", 2, 20, []string{leaving.Addr()})
	runToEnd(t, p)
	rep := settle(t, rec)
	if !rep.OK() || rep.Acked != 20-int(p.Stats().Unknown) || rep.Acked < 15 || rep.Received != rep.Expected {
		t.Fatalf("report: %s", rep)
	}
	if s := p.Stats(); s.Redirects < 1 || leaving.Connects() < 1 {
		t.Fatalf("stats %+v, %d connects to the leaving leader", s, leaving.Connects())
	}
	// The spans: the leaving leader's connection ended by its DISCONNECT,
	// then the broker's, which the end of Run closed.
	spans := p.Spans()
	first, last := spans[0], spans[len(spans)-1]
	if first.Addr != leaving.Addr() || first.ByClient || !first.ServerDisconnect || first.ReasonCode != 0x9C ||
		first.ServerReference != addr || first.Down.Before(first.Up) {
		t.Fatalf("first span %+v", first)
	}
	if last.Addr != addr || !last.ByClient || last.ServerDisconnect || last.Up.Before(first.Down) {
		t.Fatalf("last span %+v", last)
	}
	for _, a := range rec.History().Attempts {
		if a.Server != leaving.Addr() && a.Server != addr {
			t.Fatalf("attempt %d sent on %q", a.Seq, a.Server)
		}
	}
}

// Subscribers that go offline and come back, and every client's
// connection reset under load: nothing acknowledged is lost, QoS 2 is
// delivered once, order holds.
func TestOfflineOnlineAndResets(t *testing.T) {
	addr := broker(t)
	px, err := faultproxy.New("127.0.0.1:0", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = px.Close() })
	addrs := []string{px.Addr()}
	rec := history.NewRecorder()
	s1 := subscriber(t, rec, "s-qos1", 1, addrs, "p1", "p2")
	s2 := subscriber(t, rec, "s-qos2", 2, addrs, "p1", "p2")
	p1 := publisher(t, rec, "p1", 1, 0, addrs)
	p2 := publisher(t, rec, "p2", 2, 0, addrs)
	stop := runAll(t, p1, p2)
	ctx := t.Context()

	waitAcked(t, 50, p1, p2)
	if err := s1.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	waitAcked(t, 50, p1, p2)
	px.Partition(faultproxy.Reset)
	poll.Wait(t, 10*time.Second, 5*time.Millisecond, "s-qos2 to lose its connection", func() bool { return !s2.Connected() })
	px.Heal()
	waitAcked(t, 50, p1, p2)
	if err := s1.Online(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10*time.Second, 5*time.Millisecond, "both subscribers back", func() bool { return s1.Connected() && s2.Connected() })
	waitAcked(t, 50, p1, p2)
	stop()

	rep := settle(t, rec)
	t.Log(rep.Summary())
	if !rep.OK() {
		t.Fatal(rep)
	}
	if rep.Acked < 400 || rep.Expected != 2*rep.Acked {
		t.Fatalf("report: %s", rep)
	}
	if st := s2.Stats(); st.Drops < 1 || st.Connects < 2 || st.SessionsLost != 0 {
		t.Fatalf("s-qos2: %+v", st)
	}
	if st := s1.Stats(); st.Connects < 2 {
		t.Fatalf("s-qos1: %+v", st)
	}
	// s-qos1 went offline itself; s-qos2 lost its connection to the reset.
	if sp := s1.Spans(); len(sp) < 2 || !sp[0].ByClient || sp[0].Down.IsZero() || sp[1].Up.Before(sp[0].Down) {
		t.Fatalf("s-qos1 spans %+v", sp)
	}
	if sp := s2.Spans(); len(sp) < 2 || sp[0].ByClient || sp[0].ServerDisconnect || sp[0].Down.IsZero() {
		t.Fatalf("s-qos2 spans %+v", sp)
	}
}

// A subscriber whose session is gone when it reconnects records it.
func TestSessionLostIsRecorded(t *testing.T) {
	addr := broker(t)
	rec := history.NewRecorder()
	ctx := t.Context()
	s, err := mqttclient.StartSubscriber(ctx, rec, mqttclient.SubscriberConfig{
		ClientID: "s", Filter: "h/#", QoS: 1, Expiry: 1, Addrs: []string{addr}, Publishers: []string{"p"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Offline(ctx); err != nil {
		t.Fatal(err)
	}
	// The one-second session expiry passes while offline (what the broker
	// measures is time itself).
	off := time.Now()
	poll.Wait(t, 10*time.Second, 50*time.Millisecond, "the session expiry to pass", func() bool {
		return time.Since(off) > 1500*time.Millisecond
	})
	if err := s.Online(ctx); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 10*time.Second, 10*time.Millisecond, "the reconnect", s.Connected)
	rep := rec.Check()
	if rep.Count(history.SessionLost) != 1 || s.Stats().SessionsLost != 1 {
		t.Fatalf("report: %s, stats %+v", rep, s.Stats())
	}
}
