package replica

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/store/memstore"
	"github.com/bollard-io/bollard/test/mqtttest"
	"github.com/bollard-io/bollard/test/poll"
)

// fakeNode is a member whose leadership the test decides.
type fakeNode struct {
	mu      sync.Mutex
	st      cluster.Serving
	changed chan struct{}
	// transfer, when set, is what TransferLeadership does.
	transfer func() error
	// transferredTo is the member TransferLeadershipTo was last asked for.
	transferredTo string
}

func (n *fakeNode) State() (cluster.Serving, <-chan struct{}) {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.st, n.changed
}

func (n *fakeNode) set(s cluster.Serving) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.st = s
	close(n.changed)
	n.changed = make(chan struct{})
}

func (n *fakeNode) TransferLeadership() error {
	if n.transfer == nil {
		return errors.New("fake: no transfer")
	}
	return n.transfer()
}

// TransferLeadershipTo records the member asked for, then does what
// TransferLeadership does.
func (n *fakeNode) TransferLeadershipTo(id string) error {
	n.mu.Lock()
	n.transferredTo = id
	n.mu.Unlock()
	return n.TransferLeadership()
}

// serving starts an Engine whose member leads term 1, behind a loopback
// listener, and returns it with the node and the address.
func serving(t *testing.T, lease time.Duration) (*Engine, *fakeNode, string) {
	t.Helper()
	cfg := config.Default()
	cfg.Durability.Mode = config.DurabilityNone
	cfg.DataDir = ""
	cfg.Cluster.LeaderLeaseTimeout = config.Duration(lease)
	cfg.Cluster.HeartbeatTimeout = config.Duration(max(lease, config.DefaultHeartbeatTimeout))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	st := memstore.New()
	node := &fakeNode{st: cluster.Serving{Serving: true, Term: 1, LeaderID: "self"}, changed: make(chan struct{})}
	e, err := New(cfg, node, log, func(c *config.Config) (*engine.Server, error) {
		return engine.New(c, st, engine.WithLogger(log))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { e.ServeConn(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := e.Drain(ctx); err != nil {
			t.Error(err)
		}
		wg.Wait()
	})
	poll.Wait(t, 10*time.Second, 5*time.Millisecond, "the term's engine to serve", e.Ready)
	return e, node, ln.Addr().String()
}

// client connects and reports the server's DISCONNECT.
func client(t *testing.T, addr string) (*paho.Client, <-chan *paho.Disconnect) {
	t.Helper()
	got := make(chan *paho.Disconnect, 1)
	c, _, err := mqtttest.DialWith(t.Context(), addr, "dev", true, 0, nil,
		mqtttest.Options{OnServerDisconnect: func(d *paho.Disconnect) { got <- d }})
	if err != nil {
		t.Fatal(err)
	}
	return c, got
}

func waitDisconnect(t *testing.T, got <-chan *paho.Disconnect, d time.Duration) *paho.Disconnect {
	t.Helper()
	select {
	case dis := <-got:
		return dis
	case <-time.After(d):
		t.Fatalf("no DISCONNECT within %s", d)
		return nil
	}
}

// A member that loses its term without learning the new leader (cut off
// from the majority) disconnects its clients within its leader lease, not
// after a fixed wait during which every publish fails.
func TestLostTermDisconnectsWithinLease(t *testing.T) {
	const lease = 200 * time.Millisecond
	_, node, addr := serving(t, lease)
	_, got := client(t, addr)
	t0 := time.Now()
	node.set(cluster.Serving{})
	dis := waitDisconnect(t, got, 10*time.Second)
	if took := time.Since(t0); took > lease+time.Second {
		t.Fatalf("disconnected after %s, lease %s", took, lease)
	}
	if dis.ReasonCode != 0x8B {
		t.Fatalf("DISCONNECT 0x%02X, want 0x8B Server shutting down", dis.ReasonCode)
	}
}

// A member that hands its term over names the new leader in the
// DISCONNECT (0x9C Use another server), also when it learns the leader
// only after it stopped serving.
func TestHandoverNamesTheNewLeader(t *testing.T) {
	_, node, addr := serving(t, 2*time.Second)
	_, got := client(t, addr)
	node.set(cluster.Serving{})
	node.set(cluster.Serving{LeaderID: "b-1", LeaderClientAddress: "127.0.0.1:1884"})
	dis := waitDisconnect(t, got, 10*time.Second)
	if dis.ReasonCode != 0x9C || dis.Properties == nil || dis.Properties.ServerReference != "127.0.0.1:1884" {
		t.Fatalf("DISCONNECT %+v, want 0x9C naming 127.0.0.1:1884", dis)
	}
}

// A leader that stops (SIGTERM) transfers leadership, and its clients are
// told where the new leader is, even when the member learns it only after
// the drain began: the drain does not cut the wait for the leader short.
func TestDrainHandsClientsToTheNewLeader(t *testing.T) {
	e, node, addr := serving(t, 2*time.Second)
	_, got := client(t, addr)
	node.transfer = func() error {
		node.set(cluster.Serving{})
		go func() {
			<-e.stop // the drain goes on after the transfer
			node.set(cluster.Serving{LeaderID: "b-1", LeaderClientAddress: "127.0.0.1:1884"})
		}()
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	dis := waitDisconnect(t, got, 10*time.Second)
	if dis.ReasonCode != 0x9C || dis.Properties == nil || dis.Properties.ServerReference != "127.0.0.1:1884" {
		t.Fatalf("DISCONNECT 0x%02X %+v, want 0x9C naming 127.0.0.1:1884", dis.ReasonCode, dis.Properties)
	}
}
