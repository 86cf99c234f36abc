package replica

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/test/poll"
)

func newPipeEngine(t *testing.T, n Node) *Engine {
	t.Helper()
	return newPipeEngineOver(t, n, memstore.New())
}

// newPipeEngineOver is newPipeEngine over st, the store of every term (as
// the replicated store is).
func newPipeEngineOver(t *testing.T, n Node, st store.Store) *Engine {
	t.Helper()
	cfg := config.Default()
	allow := true
	cfg.Auth.AllowAnonymous = &allow
	cfg.DrainTimeout = config.Duration(5 * time.Second)
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
	return connectPipeExpiry(t, e, clientID, 0)
}

// connectPipeExpiry is connectPipe for a session that outlives the
// connection by expiry seconds (a persistent session: its state is stored).
func connectPipeExpiry(t *testing.T, e *Engine, clientID string, expiry uint32) (*packet.Connack, net.Conn, *bufio.Reader) {
	t.Helper()
	cli, srv := net.Pipe()
	go e.ServeConn(srv)
	cp := &packet.Connect{ProtocolVersion: packet.V5, CleanStart: true, ClientID: clientID, KeepAlive: 60}
	if expiry > 0 {
		cp.Properties.SessionExpiryInterval = &expiry
	}
	go func() {
		_ = packet.Write(cli, cp, packet.V5)
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

// transferStore is a replicated store as a leader that hands its
// leadership over sees it: a commit takes a while (replication), and
// once the transfer began (refusing) every commit not yet done fails
// as Raft fails it.
type transferStore struct {
	store.Store
	delay    atomic.Int64 // nanoseconds a commit takes
	entered  chan struct{}
	refusing atomic.Bool
}

func (s *transferStore) Commit(ctx context.Context, b *store.Batch) error {
	if d := time.Duration(s.delay.Load()); d > 0 {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		time.Sleep(d) // the replication round trip the fake stands for
	}
	if s.refusing.Load() {
		return cluster.ErrNotLeader
	}
	return s.Store.Commit(ctx, b)
}

// A leader handing its leadership over with a publish in flight (its
// commit replicating) lets it finish before the transfer: the publisher is
// acknowledged (PUBREC 0x00, not 0x80), and both it and a QoS 2 subscriber
// are then told where the new leader is (DISCONNECT 0x9C), none closed
// without it. Both ways a transfer happens: a graceful stop (SIGTERM) and
// the admin endpoint's transfer.
func TestTransferFinishesCommitsInFlight(t *testing.T) {
	t.Run("drain", func(t *testing.T) {
		testTransferInFlight(t, func(e *Engine) error {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			return e.Drain(ctx)
		})
	})
	t.Run("admin", func(t *testing.T) {
		testTransferInFlight(t, func(e *Engine) error { return e.TransferLeadership() })
	})
}

func testTransferInFlight(t *testing.T, transfer func(*Engine) error) {
	n := &fakeNode{changed: make(chan struct{})}
	n.set(cluster.Serving{Serving: true, Term: 3, LeaderID: "b-0"})
	st := &transferStore{Store: memstore.New(), entered: make(chan struct{}, 1)}
	n.transfer = func() error {
		st.refusing.Store(true)
		n.set(cluster.Serving{LeaderID: "b-1", LeaderClientAddress: "b-1:1883"})
		return nil
	}
	e := newPipeEngineOver(t, n, st)
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "serving", e.Ready)

	_, sub, subR := connectPipeExpiry(t, e, "sub", 3600)
	go func() {
		_ = packet.Write(sub, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "t", QoS: 2}}}, packet.V5)
	}()
	_ = sub.SetReadDeadline(time.Now().Add(5 * time.Second))
	if p, err := packet.ReadPacket(subR, packet.V5, 1<<20); err != nil {
		t.Fatalf("read SUBACK: %v", err)
	} else if _, ok := p.(*packet.Suback); !ok {
		t.Fatalf("got %T, want SUBACK", p)
	}

	_, pub, pubR := connectPipeExpiry(t, e, "pub", 3600)
	// From now on a commit takes 200 ms: the transfer, unless it waits,
	// begins while the publish's commit is under way.
	st.delay.Store(int64(200 * time.Millisecond))
	go func() {
		_ = packet.Write(pub, &packet.Publish{QoS: 2, Topic: "t", PacketID: 7, Payload: []byte("x")}, packet.V5)
	}()
	<-st.entered
	done := make(chan error, 1)
	go func() { done <- transfer(e) }()

	// What each client reads until its connection ends.
	read := func(r *bufio.Reader, c net.Conn) []packet.Packet {
		var got []packet.Packet
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			p, err := packet.ReadPacket(r, packet.V5, 1<<20)
			if err != nil {
				return got
			}
			got = append(got, p)
			if _, ok := p.(*packet.Disconnect); ok {
				return got
			}
		}
	}
	handedOver := func(who string, got []packet.Packet) {
		t.Helper()
		if len(got) == 0 {
			t.Fatalf("%s: the connection closed without a DISCONNECT", who)
		}
		d, ok := got[len(got)-1].(*packet.Disconnect)
		if !ok {
			t.Fatalf("%s: the connection closed after %T without a DISCONNECT", who, got[len(got)-1])
		}
		if d.ReasonCode != packet.UseAnotherServer || d.Properties.ServerReference == nil || *d.Properties.ServerReference != "b-1:1883" {
			t.Fatalf("%s: DISCONNECT 0x%02X %v, want 0x9C naming b-1:1883", who, byte(d.ReasonCode), d.Properties.ServerReference)
		}
	}
	subGot := make(chan []packet.Packet, 1)
	go func() { subGot <- read(subR, sub) }()
	got := read(pubR, pub)
	handedOver("publisher", got)
	if rec, ok := got[0].(*packet.Pubrec); !ok || rec.PacketID != 7 || rec.ReasonCode != packet.Success {
		t.Fatalf("publisher read %s first, want PUBREC 7 Success", describePacket(got[0]))
	}
	handedOver("subscriber", <-subGot)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// describePacket names a packet with its reason code, if it has one.
func describePacket(p packet.Packet) string {
	switch p := p.(type) {
	case *packet.Pubrec:
		return fmt.Sprintf("PUBREC %d 0x%02X", p.PacketID, byte(p.ReasonCode))
	case *packet.Disconnect:
		return fmt.Sprintf("DISCONNECT 0x%02X", byte(p.ReasonCode))
	case *packet.Puback:
		return fmt.Sprintf("PUBACK %d 0x%02X", p.PacketID, byte(p.ReasonCode))
	}
	return fmt.Sprintf("%T", p)
}

// A leadership transfer that fails leaves the member leading with a
// quiesced engine: its clients are sent back to it (DISCONNECT 0x9C naming
// this member) and a fresh engine serves the term, publishes included.
func TestFailedTransferServesAgain(t *testing.T) {
	n := &fakeNode{changed: make(chan struct{})}
	n.set(cluster.Serving{Serving: true, Term: 4, LeaderID: "b-0", LeaderClientAddress: "b-0:1883"})
	n.transfer = func() error { return errors.New("fake: no follower is up to date") }
	e := newPipeEngine(t, n)
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "serving", e.Ready)
	_, cli, r := connectPipe(t, e, "c")
	before := e.current()
	if err := e.TransferLeadership(); err == nil {
		t.Fatal("the failed transfer reported success")
	}
	_ = cli.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err := packet.ReadPacket(r, packet.V5, 1<<20)
	if err != nil {
		t.Fatalf("read DISCONNECT: %v", err)
	}
	if d, ok := p.(*packet.Disconnect); !ok || d.ReasonCode != packet.UseAnotherServer || d.Properties.ServerReference == nil || *d.Properties.ServerReference != "b-0:1883" {
		t.Fatalf("after a failed transfer: %s, want DISCONNECT 0x9C naming this member", describePacket(p))
	}
	poll.Wait(t, 5*time.Second, 5*time.Millisecond, "a fresh engine to serve", func() bool {
		cur := e.current()
		return cur != nil && cur != before && e.Ready()
	})
	ack, pub, pr := connectPipe(t, e, "c")
	if ack.ReasonCode != packet.Success {
		t.Fatalf("CONNECT after the failed transfer: 0x%02X", byte(ack.ReasonCode))
	}
	go func() {
		_ = packet.Write(pub, &packet.Publish{QoS: 1, Topic: "t", PacketID: 1, Payload: []byte("x")}, packet.V5)
	}()
	_ = pub.SetReadDeadline(time.Now().Add(5 * time.Second))
	p, err = packet.ReadPacket(pr, packet.V5, 1<<20)
	if err != nil {
		t.Fatalf("read PUBACK: %v", err)
	}
	if a, ok := p.(*packet.Puback); !ok || a.ReasonCode != packet.Success {
		t.Fatalf("publish after the failed transfer: %s, want PUBACK Success", describePacket(p))
	}
}
