package replica

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/test/poll"
)

// connectResult is what a client got for a CONNECT sent through
// connectAsync, and when.
type connectResult struct {
	ack *packet.Connack
	err error
	at  time.Time
}

// connectAsync sends a 5.0 CONNECT through e over a pipe and delivers the
// answer later: a held connection answers only when the hold ends.
func connectAsync(t *testing.T, e *Engine, clientID string) <-chan connectResult {
	t.Helper()
	cli, srv := net.Pipe()
	t.Cleanup(func() { _ = cli.Close() })
	go e.ServeConn(srv)
	out := make(chan connectResult, 1)
	go func() {
		cp := &packet.Connect{ProtocolVersion: packet.V5, CleanStart: true, ClientID: clientID, KeepAlive: 60}
		if err := packet.Write(cli, cp, packet.V5); err != nil {
			out <- connectResult{err: err}
			return
		}
		_ = cli.SetReadDeadline(time.Now().Add(20 * time.Second))
		p, err := packet.ReadPacket(bufio.NewReader(cli), packet.V5, 1<<20)
		ack, _ := p.(*packet.Connack)
		if err == nil && ack == nil {
			err = errors.New("not a CONNACK")
		}
		out <- connectResult{ack: ack, err: err, at: time.Now()}
	}()
	return out
}

func wait(t *testing.T, ch <-chan connectResult) connectResult {
	t.Helper()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("connect: %v", r.err)
		}
		return r
	case <-time.After(30 * time.Second):
		t.Fatal("no CONNACK")
	}
	return connectResult{}
}

func waitHeld(t *testing.T, e *Engine, n int64) {
	t.Helper()
	poll.Wait(t, 10*time.Second, 2*time.Millisecond, "held connections", func() bool { return e.HandoverStatus().Held == n })
}

func follower() *fakeNode {
	n := &fakeNode{changed: make(chan struct{})}
	n.set(cluster.Serving{LeaderID: "b-0", LeaderClientAddress: "b-0:1883"})
	return n
}

// A successor is ready before it leads and holds the CONNECTs it gets
// until its term's engine serves them; then readiness follows leadership.
func TestHandoverSuccessorHoldsUntilItLeads(t *testing.T) {
	n := follower()
	e := newPipeEngine(t, n)
	if e.Ready() {
		t.Fatal("a follower is ready")
	}
	if _, err := e.PrepareHandover(HandoverSuccessor, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	if !e.Ready() {
		t.Fatal("a prepared successor is not ready")
	}
	if ok, _ := e.Serving(); !ok {
		t.Fatal("a prepared successor does not take connections")
	}
	res := connectAsync(t, e, "held")
	waitHeld(t, e, 1)
	select {
	case r := <-res:
		t.Fatalf("answered before leading: %+v", r)
	default:
	}
	n.set(cluster.Serving{Serving: true, Term: 2, LeaderID: "b-1"})
	if r := wait(t, res); r.ack.ReasonCode != packet.Success {
		t.Fatalf("held CONNECT answered %v, want Success", r.ack.ReasonCode)
	}
	s := e.HandoverStatus()
	if s.Role != HandoverNone || s.Held != 0 || s.Served != 1 {
		t.Fatalf("after leading: %+v", s)
	}
	// Leadership moves on: not ready, as any follower.
	n.set(cluster.Serving{LeaderID: "b-2", LeaderClientAddress: "b-2:1883"})
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the term's engine to retire", func() bool { return !e.Ready() })
}

// A held CONNECT waits at most HoldFor, then is refused naming the leader.
func TestHandoverHoldIsBoundedInTime(t *testing.T) {
	n := follower()
	e := newPipeEngine(t, n)
	e.SetHandoverLimits(HandoverLimits{HoldFor: 150 * time.Millisecond})
	if _, err := e.PrepareHandover(HandoverSuccessor, 0); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r := wait(t, connectAsync(t, e, "slow"))
	if r.ack.ReasonCode != packet.UseAnotherServer || r.ack.Properties.ServerReference == nil || *r.ack.Properties.ServerReference != "b-0:1883" {
		t.Fatalf("after the hold: %v ref %v", r.ack.ReasonCode, r.ack.Properties.ServerReference)
	}
	if d := r.at.Sub(t0); d < 150*time.Millisecond {
		t.Fatalf("refused after %s, before the hold's bound", d)
	}
	if s := e.HandoverStatus(); s.TimedOut != 1 || s.Held != 0 || s.Role != HandoverSuccessor {
		t.Fatalf("status: %+v", s)
	}
}

// More than MaxHeld connections: the extra ones are refused at once; the
// held ones are still served once the member leads.
func TestHandoverHoldIsBoundedInCount(t *testing.T) {
	n := follower()
	e := newPipeEngine(t, n)
	e.SetHandoverLimits(HandoverLimits{MaxHeld: 2})
	if _, err := e.PrepareHandover(HandoverSuccessor, 0); err != nil {
		t.Fatal(err)
	}
	a, b := connectAsync(t, e, "a"), connectAsync(t, e, "b")
	waitHeld(t, e, 2)
	for i := range 3 {
		if r := wait(t, connectAsync(t, e, "extra")); r.ack.ReasonCode != packet.UseAnotherServer {
			t.Fatalf("extra connection %d: %v, want Use another server", i, r.ack.ReasonCode)
		}
	}
	if s := e.HandoverStatus(); s.OverLimit != 3 || s.Held != 2 {
		t.Fatalf("status: %+v", s)
	}
	n.set(cluster.Serving{Serving: true, Term: 2, LeaderID: "b-1"})
	for _, ch := range []<-chan connectResult{a, b} {
		if r := wait(t, ch); r.ack.ReasonCode != packet.Success {
			t.Fatalf("held: %v", r.ack.ReasonCode)
		}
	}
}

// cluster.handoverMaxHeld and cluster.handoverHoldFor bound the holding
// from the configuration, and a reload changes them (reload class hot).
func TestHandoverLimitsFromConfig(t *testing.T) {
	n := follower()
	e := newPipeEngine(t, n)
	cfg := config.Default()
	allow := true
	cfg.Auth.AllowAnonymous = &allow
	cfg.Cluster.HandoverMaxHeld, cfg.Cluster.HandoverHoldFor = 1, config.Duration(200*time.Millisecond)
	if _, err := e.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PrepareHandover(HandoverSuccessor, 0); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	a := connectAsync(t, e, "a")
	waitHeld(t, e, 1)
	if r := wait(t, connectAsync(t, e, "extra")); r.ack.ReasonCode != packet.UseAnotherServer {
		t.Fatalf("a second connection over handoverMaxHeld 1: %v, want Use another server", r.ack.ReasonCode)
	}
	r := wait(t, a)
	if r.ack.ReasonCode != packet.UseAnotherServer || r.at.Sub(t0) < 200*time.Millisecond || r.at.Sub(t0) > 4*time.Second {
		t.Fatalf("held connection: %v after %s, want Use another server after handoverHoldFor 200ms", r.ack.ReasonCode, r.at.Sub(t0))
	}
	if s := e.HandoverStatus(); s.OverLimit != 1 || s.TimedOut != 1 {
		t.Fatalf("status: %+v", s)
	}
	// A reload to the defaults: two connections are held at once again.
	cfg.Cluster.HandoverMaxHeld, cfg.Cluster.HandoverHoldFor = 0, 0
	if _, err := e.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	b, c := connectAsync(t, e, "b"), connectAsync(t, e, "c")
	waitHeld(t, e, 2)
	n.set(cluster.Serving{Serving: true, Term: 2, LeaderID: "b-1"})
	for _, ch := range []<-chan connectResult{b, c} {
		if r := wait(t, ch); r.ack.ReasonCode != packet.Success {
			t.Fatalf("held after the reload: %v", r.ack.ReasonCode)
		}
	}
	if l := e.ho.getLimits(); l.MaxHeld != config.DefaultHandoverMaxHeld || l.HoldFor != config.DefaultHandoverHoldFor {
		t.Fatalf("limits after reloading the defaults: %+v", l)
	}
}

// A handover nobody completes expires by itself: the successor is no
// longer ready and lets go of what it held, well before HoldFor.
func TestHandoverExpires(t *testing.T) {
	n := follower()
	e := newPipeEngine(t, n)
	e.SetHandoverLimits(HandoverLimits{HoldFor: 20 * time.Second})
	if _, err := e.PrepareHandover(HandoverSuccessor, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	res := connectAsync(t, e, "held")
	waitHeld(t, e, 1)
	r := wait(t, res)
	if r.ack.ReasonCode != packet.UseAnotherServer {
		t.Fatalf("after expiry: %v", r.ack.ReasonCode)
	}
	if e.Ready() {
		t.Fatal("ready after the handover expired")
	}
	if s := e.HandoverStatus(); s.Role != HandoverNone || s.Abandoned != 1 || s.Remaining != 0 {
		t.Fatalf("status: %+v", s)
	}
	if ok, _ := e.Serving(); ok {
		t.Fatal("takes connections after the handover expired")
	}
}

// A leader that steps back is not ready but keeps serving; EndHandover
// (or expiry) makes it ready again. Roles a member cannot take are
// refused, and so are durations out of range.
func TestHandoverPredecessorAndRefusals(t *testing.T) {
	n := &fakeNode{changed: make(chan struct{})}
	n.set(cluster.Serving{Serving: true, Term: 1, LeaderID: "b-0"})
	e := newPipeEngine(t, n)
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the term's engine to serve", e.Ready)
	if _, err := e.PrepareHandover(HandoverSuccessor, 0); !errors.Is(err, ErrHandover) {
		t.Fatalf("successor on the leader: %v", err)
	}
	for _, ttl := range []time.Duration{-time.Second, DefaultHandoverLimits.MaxTTL + time.Second} {
		if _, err := e.PrepareHandover(HandoverPredecessor, ttl); !errors.Is(err, ErrHandoverTTL) {
			t.Fatalf("ttl %s: %v", ttl, err)
		}
	}
	ttl, err := e.PrepareHandover(HandoverPredecessor, 0)
	if err != nil || ttl != DefaultHandoverLimits.DefaultTTL {
		t.Fatalf("predecessor: %s %v", ttl, err)
	}
	if e.Ready() {
		t.Fatal("a stepping-back leader is ready")
	}
	if ack, _, _ := connectPipe(t, e, "still"); ack.ReasonCode != packet.Success {
		t.Fatalf("a stepping-back leader refused a client: %v", ack.ReasonCode)
	}
	e.EndHandover()
	if !e.Ready() {
		t.Fatal("not ready after the handover ended")
	}
	if _, err := e.PrepareHandover(HandoverPredecessor, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the step back to expire", e.Ready)

	f := newPipeEngine(t, follower())
	if _, err := f.PrepareHandover(HandoverPredecessor, 0); !errors.Is(err, cluster.ErrNotLeader) {
		t.Fatalf("predecessor on a follower: %v", err)
	}
	if _, err := ParseHandoverRole("boss"); !errors.Is(err, ErrHandover) {
		t.Fatalf("unknown role: %v", err)
	}
}

// TransferLeadershipTo transfers to the member named.
func TestTransferLeadershipToNamedMember(t *testing.T) {
	n := &fakeNode{changed: make(chan struct{})}
	n.set(cluster.Serving{Serving: true, Term: 1, LeaderID: "b-0"})
	n.transfer = func() error {
		n.set(cluster.Serving{LeaderID: "b-2", LeaderClientAddress: "b-2:1883"})
		return nil
	}
	e := newPipeEngine(t, n)
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the term's engine to serve", e.Ready)
	if err := e.TransferLeadershipTo("b-2"); err != nil {
		t.Fatal(err)
	}
	n.mu.Lock()
	to := n.transferredTo
	n.mu.Unlock()
	if to != "b-2" {
		t.Fatalf("transferred to %q, want b-2", to)
	}
}

// A leader whose term's engine is still recovering holds the connections
// that arrive meanwhile (the clients a transfer sent to it) and serves
// them once it recovered, instead of refusing them.
func TestLeaderHoldsConnectionsWhileRecovering(t *testing.T) {
	gate := make(chan struct{})
	calls := 0
	n := follower()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg := config.Default()
	allow := true
	cfg.Auth.AllowAnonymous = &allow
	st := memstore.New()
	e, err := New(cfg, n, log, func(c *config.Config) (*engine.Server, error) {
		calls++
		if calls > 1 { // the refuser is built at once; a term's engine waits
			<-gate
		}
		return engine.New(c, st, engine.WithLogger(log))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Drain(context.Background()) })
	n.set(cluster.Serving{Serving: true, Term: 2, LeaderID: "b-1"})
	res := connectAsync(t, e, "early")
	waitHeld(t, e, 1)
	if e.Ready() {
		t.Fatal("ready before the term's engine recovered")
	}
	close(gate)
	if r := wait(t, res); r.ack.ReasonCode != packet.Success {
		t.Fatalf("held during recovery: %v", r.ack.ReasonCode)
	}
	if s := e.HandoverStatus(); s.Served != 1 || s.Held != 0 {
		t.Fatalf("status: %+v", s)
	}
}

// A member that stops lets go of what it holds at once.
func TestDrainReleasesHeldConnections(t *testing.T) {
	n := follower()
	e := newPipeEngine(t, n)
	e.SetHandoverLimits(HandoverLimits{HoldFor: time.Minute})
	if _, err := e.PrepareHandover(HandoverSuccessor, time.Minute); err != nil {
		t.Fatal(err)
	}
	res := connectAsync(t, e, "held")
	waitHeld(t, e, 1)
	if err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Refused, or closed without an answer when the refusal itself was
	// already stopping: never served.
	select {
	case r := <-res:
		if r.err == nil && r.ack.ReasonCode == packet.Success {
			t.Fatal("served by a member that stopped")
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the held connection was not let go")
	}
	if s := e.HandoverStatus(); s.Abandoned != 1 || s.Held != 0 {
		t.Fatalf("status: %+v", s)
	}
}

// A successor whose leadership goes to another member (the operator chose
// another successor, or an election did) stops being one at once: it
// refuses the connections it held, naming the new leader, answers not
// ready and takes no more connections. Held for HoldFor instead, and
// listed ready by the Service meanwhile, it kept clients from the leader
// for seconds (seen in an e2e rolling upgrade). A renewal of the role
// while the same leader leads keeps it.
func TestHandoverSuccessorSupersededByAnotherLeader(t *testing.T) {
	n := follower() // b-0 leads
	e := newPipeEngine(t, n)
	e.SetHandoverLimits(HandoverLimits{HoldFor: 20 * time.Second})
	if _, err := e.PrepareHandover(HandoverSuccessor, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := e.PrepareHandover(HandoverSuccessor, 30*time.Second); err != nil {
		t.Fatal(err) // a renewal
	}
	res := connectAsync(t, e, "held")
	waitHeld(t, e, 1)
	n.set(cluster.Serving{LeaderID: "b-0", LeaderClientAddress: "b-0:1883"}) // no change of leader
	if s := e.HandoverStatus(); s.Role != HandoverSuccessor || s.Held != 1 || !e.Ready() {
		t.Fatalf("the same leader still leads: %+v, ready %v", s, e.Ready())
	}
	t0 := time.Now()
	n.set(cluster.Serving{LeaderID: "b-2", LeaderClientAddress: "b-2:1883"})
	r := wait(t, res)
	if r.ack.ReasonCode != packet.UseAnotherServer || r.ack.Properties.ServerReference == nil || *r.ack.Properties.ServerReference != "b-2:1883" {
		t.Fatalf("held CONNECT answered %v ref %v, want 0x9C naming b-2", r.ack.ReasonCode, r.ack.Properties.ServerReference)
	}
	if d := r.at.Sub(t0); d > 5*time.Second {
		t.Fatalf("refused %s after another member led: held as long as the hold's bound", d)
	}
	if s := e.HandoverStatus(); s.Role != HandoverNone || s.Held != 0 || s.Abandoned != 1 {
		t.Fatalf("status: %+v", s)
	}
	if e.Ready() {
		t.Fatal("ready after another member took the leadership")
	}
	if ok, _ := e.Serving(); ok {
		t.Fatal("takes connections after another member took the leadership")
	}
}
