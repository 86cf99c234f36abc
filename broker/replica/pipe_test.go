package replica

import (
	"bufio"
	"context"
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

func newPipeEngine(t *testing.T, n Node) *Engine {
	t.Helper()
	cfg := config.Default()
	allow := true
	cfg.Auth.AllowAnonymous = &allow
	cfg.DrainTimeout = config.Duration(5 * time.Second)
	st := memstore.New() // one store for every term, as the replicated store is
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, err := New(cfg, n, log, func(c *config.Config) (*engine.Server, error) {
		return engine.New(c, st, engine.WithLogger(log))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	return e
}

// connectPipe runs a 5.0 CONNECT through e over a pipe and returns the CONNACK
// and the client's reader.
func connectPipe(t *testing.T, e *Engine, clientID string) (*packet.Connack, net.Conn, *bufio.Reader) {
	t.Helper()
	cli, srv := net.Pipe()
	go e.ServeConn(srv)
	go func() {
		_ = packet.Write(cli, &packet.Connect{ProtocolVersion: packet.V5, CleanStart: true, ClientID: clientID, KeepAlive: 60}, packet.V5)
	}()
	r := bufio.NewReader(cli)
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := packet.ReadPacket(r, packet.V5, 1<<20)
	if err != nil {
		t.Fatalf("read CONNACK: %v", err)
	}
	ack, ok := p.(*packet.Connack)
	if !ok {
		t.Fatalf("got %T, want CONNACK", p)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return ack, cli, r
}

func TestFollowerRefusesLeaderServesAndHandsOver(t *testing.T) {
	n := &fakeNode{changed: make(chan struct{})}
	n.set(cluster.Serving{LeaderID: "b-1", LeaderClientAddress: "b-1:1883"})
	e := newPipeEngine(t, n)

	// A follower refuses, naming the leader.
	ack, _, _ := connectPipe(t, e, "c1")
	if ack.ReasonCode != packet.UseAnotherServer || ack.Properties.ServerReference == nil || *ack.Properties.ServerReference != "b-1:1883" {
		t.Fatalf("follower CONNACK: %v ref %v", ack.ReasonCode, ack.Properties.ServerReference)
	}
	if e.Ready() {
		t.Fatal("a follower is ready")
	}

	// Elected: a term's engine recovers and serves.
	n.set(cluster.Serving{Serving: true, Term: 2, LeaderID: "b-0"})
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the term's engine to serve", e.Ready)
	ack, cli, r := connectPipe(t, e, "c2")
	if ack.ReasonCode != packet.Success {
		t.Fatalf("leader CONNACK: %v", ack.ReasonCode)
	}

	// Leadership moves: the client is told where to go.
	n.set(cluster.Serving{LeaderID: "b-2", LeaderClientAddress: "b-2:1883"})
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := packet.ReadPacket(r, packet.V5, 1<<20)
	if err != nil {
		t.Fatalf("read DISCONNECT: %v", err)
	}
	d, ok := p.(*packet.Disconnect)
	if !ok || d.ReasonCode != packet.UseAnotherServer || d.Properties.ServerReference == nil || *d.Properties.ServerReference != "b-2:1883" {
		t.Fatalf("handover: %#v", p)
	}
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "the term's engine to retire", func() bool { return !e.Ready() })
	if err := e.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// SIGTERM on the leader: leadership is transferred before the clients are
// disconnected, and they are sent to the new leader.
func TestDrainTransfersLeadershipFirst(t *testing.T) {
	n := &fakeNode{changed: make(chan struct{})}
	n.set(cluster.Serving{Serving: true, Term: 3, LeaderID: "b-0"})
	transfers := 0
	n.transfer = func() error {
		transfers++
		n.set(cluster.Serving{LeaderID: "b-1", LeaderClientAddress: "b-1:1883"})
		return nil
	}
	e := newPipeEngine(t, n)
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "serving", e.Ready)
	_, cli, r := connectPipe(t, e, "c")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.Drain(ctx) }()
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := packet.ReadPacket(r, packet.V5, 1<<20)
	if err != nil {
		t.Fatalf("read DISCONNECT: %v", err)
	}
	if d, ok := p.(*packet.Disconnect); !ok || d.ReasonCode != packet.UseAnotherServer || *d.Properties.ServerReference != "b-1:1883" {
		t.Fatalf("drain sent %#v", p)
	}
	_ = cli.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if transfers != 1 {
		t.Fatalf("%d leadership transfers, want 1", transfers)
	}
}
