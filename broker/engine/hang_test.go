package engine

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

// Reproductions of the committer hangs of issue 12: work done on the
// committer goroutine (the onStored callbacks) that blocks stalls every
// commit of every client.

// TestHangCommitterSubmitFromCallback: a QoS 2 publish that a full queue
// rejects (RejectPublish) is answered PUBREC 0x97 from the committer's
// callback. That callback used to release the inbound QoS 2 state with a
// second submit (forgetInbound); with the committer's queue full, the
// committer waited on its own queue forever and no client got any
// acknowledgement again.
func TestHangCommitterSubmitFromCallback(t *testing.T) {
	cfg := testConfig()
	cfg.Queues.OverflowPolicy = config.OverflowRejectPublish
	cfg.Queues.MaxQueuedMessages = 1
	g := newGatedStore(memstore.New())
	b := startBroker(t, cfg, withStore(g))

	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true,
		Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "t", QoS: 1})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()
	eventually(t, 5*time.Second, "sub offline", func() bool { return !b.srv.online("sub") })

	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true,
		Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
	pub.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "t", Payload: []byte("fills the queue")})
	if ack, ok := pub.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("first publish: %+v", ack)
	}

	g.hold()
	pub.send(&packet.Publish{QoS: 2, PacketID: 2, Topic: "t", Payload: []byte("rejected")})
	eventually(t, 5*time.Second, "the QoS 2 publish at the store", func() bool { return g.waiting.Load() == 1 })
	// Fill the committer's queue behind it.
	ch := b.srv.com.ch
	filler := cap(ch) - len(ch)
	for range filler {
		b.srv.com.submit(&job{})
	}
	g.release()

	p, err := pub.tryRecv(5 * time.Second)
	rec, ok := p.(*packet.Pubrec)
	if err != nil || !ok || rec.ReasonCode != packet.QuotaExceeded {
		t.Errorf("PUBREC 0x97 not received (committer stalled?): %+v, %v", p, err)
		unjam(ch, filler)
		return
	}
	// Every commit still completes.
	done := make(chan error, 1)
	go func() { done <- b.srv.com.commit(nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Error("committer stalled")
		unjam(ch, filler)
	}
	// The rejected exchange is over: the same packet identifier starts a
	// new one, which is routed (its PUBREC is 0x97 again, not a resend's 0x00).
	pub.send(&packet.Publish{QoS: 2, PacketID: 2, Topic: "t", Payload: []byte("again")})
	if rec, ok := pub.recv().(*packet.Pubrec); !ok || rec.ReasonCode != packet.QuotaExceeded {
		t.Errorf("second QoS 2 publish with the same id: %+v", rec)
	}
}

// unjam takes up to n jobs off a stalled committer's queue so that the
// test can end (only a failing test calls it).
func unjam(ch chan *job, n int) {
	for range n {
		select {
		case <-ch:
		case <-time.After(time.Second):
			return
		}
	}
}

// slowCloseConn is a connection whose Close takes closeDelay, as a
// WebSocket's does: its close handshake waits seconds for a peer that does
// not answer. ConnHandler's contract allows that; the engine must never
// close on the committer goroutine.
type slowCloseConn struct {
	net.Conn
	once sync.Once
}

// closeDelay is long beside what a loaded machine adds to a round trip
// (the honest client's publish can share a group commit with the 32 MiB
// one): 3.8 s was seen in CI with -race and every test package running,
// which a 5 s delay could not tell from a stall.
const closeDelay = 12 * time.Second

func (c *slowCloseConn) Close() error {
	c.once.Do(func() { time.Sleep(closeDelay) })
	return c.Conn.Close()
}

// TestHangSlowCloseOnCommitter: a client that publishes QoS 1 but never
// reads overflows its outbound buffer with PUBACKs, which the committer
// queues. Closing that connection used to run a WebSocket's close
// handshake (waiting seconds for a peer that never answers) on the
// committer goroutine, and every other client's acknowledgements waited.
func TestHangSlowCloseOnCommitter(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.OutboundBufferBytes = 4096
	cfg.Limits.MaxPacketSize = 64 << 20
	cfg.Queues.MaxQueuedBytes = 1 << 30 // the big delivery must not be dropped
	cfg.Queues.MaxQueuedMessages = 1 << 20
	b := startBroker(t, cfg)
	addr := listenWith(t, func(nc net.Conn) { b.srv.ServeConn(&slowCloseConn{Conn: nc}) })
	ws := dialRaw(t, addr, packet.V311).nc
	slow := &rawClient{t: t, nc: ws, r: packet.NewReader(ws, packet.V311, 0), version: packet.V311}
	slow.connect(&packet.Connect{ClientID: "slow", CleanStart: false, KeepAlive: 0})
	slow.subscribe(1, 0, packet.Subscription{Filter: "loop/#", QoS: 1})

	honest := dialRaw(t, b.addr, packet.V311)
	honest.connect(&packet.Connect{ClientID: "honest", CleanStart: false})
	honest.subscribe(1, 0, packet.Subscription{Filter: "honest", QoS: 1})

	// The slow client publishes to itself and stops reading: one delivery
	// larger than the socket buffers blocks its writer, then the PUBACKs
	// of its small publishes overflow its outbound buffer.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if packet.Write(ws, &packet.Publish{QoS: 1, PacketID: 1, Topic: "loop/big", Payload: make([]byte, 32<<20)}, packet.V311) != nil {
			return
		}
		for i := 1; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_ = ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
			err := packet.Write(ws, &packet.Publish{QoS: 1, PacketID: uint16(i%60000 + 2), Topic: "loop/small", Payload: []byte("x")}, packet.V311)
			if err != nil {
				return
			}
		}
	})
	defer func() { close(stop); _ = ws.Close(); wg.Wait() }()

	// Meanwhile the honest client's QoS 1 round trips stay fast.
	var worst time.Duration
	deadline := time.Now().Add(25 * time.Second)
	closed := false
	for i := 1; time.Now().Before(deadline); i++ {
		start := time.Now()
		honest.send(&packet.Publish{QoS: 1, PacketID: uint16(i), Topic: "honest", Payload: []byte(fmt.Sprint(i))})
		gotAck, gotMsg := false, false
		for !gotAck || !gotMsg {
			p, err := honest.tryRecv(20 * time.Second)
			if err != nil {
				t.Fatalf("honest client: no acknowledgement after %v (committer stalled): %v", time.Since(start), err)
			}
			switch p := p.(type) {
			case *packet.Puback:
				gotAck = true
			case *packet.Publish:
				gotMsg = true
				honest.send(&packet.Puback{PacketID: p.PacketID})
			}
		}
		worst = max(worst, time.Since(start))
		if !closed && !b.srv.online("slow") {
			closed = true
			deadline = time.Now().Add(2 * time.Second) // a few more round trips after the close
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("worst honest QoS 1 round trip: %v; slow client closed: %v", worst, closed)
	if !closed {
		t.Fatal("the slow client was not disconnected")
	}
	// A committer that ran the close would hold every acknowledgement for
	// closeDelay (12 s); a race-built broker reading the 32 MiB publish on
	// a loaded machine has taken 3.8 s without any stall.
	if worst > closeDelay*7/10 {
		t.Errorf("honest client waited %v for a QoS 1 round trip: the committer stalled", worst)
	}
}
