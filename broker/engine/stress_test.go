package engine

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// Many publishers on their own connections fan out to several offline
// persistent sessions through the durable store at once: every
// acknowledged message is queued exactly once, in each publisher's order
// (concurrent commits must not reorder a queue).
func TestConcurrentPublishersKeepOrder(t *testing.T) {
	st, err := pebblestore.Open(t.TempDir(), pebblestore.Options{Durability: pebblestore.Sync})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg := testConfig()
	cfg.Queues.MaxQueuedMessages = 100000
	b := startBroker(t, cfg, withStore(st))
	const subs, pubs, n = 3, 6, 150
	for i := range subs {
		offlineSubscriber(t, b, fmt.Sprintf("cs%d", i), "cp/#", 1)
	}
	var wg sync.WaitGroup
	errs := make(chan error, pubs)
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- publishBurst(b.addr, p, n)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range subs {
		got := drainSession(t, b, fmt.Sprintf("cs%d", i), pubs*n)
		next := make([]int, pubs)
		for _, g := range got {
			pub, seq, _ := strings.Cut(g, ":")
			p, _ := strconv.Atoi(pub)
			s, _ := strconv.Atoi(seq)
			if s != next[p] {
				t.Fatalf("session cs%d: publisher %d message %d arrived when %d was expected", i, p, s, next[p])
			}
			next[p]++
		}
	}
}

// publishBurst publishes n QoS 1 messages with up to 32 in flight.
func publishBurst(addr string, p, n int) error {
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer nc.Close()
	c := &rawClient{nc: nc, r: packet.NewReader(nc, packet.V5, 0), version: packet.V5}
	if err := packet.Write(c.nc, &packet.Connect{ProtocolVersion: packet.V5, ClientID: fmt.Sprintf("cpub%d", p), CleanStart: true}, packet.V5); err != nil {
		return err
	}
	if _, err := c.r.ReadPacket(); err != nil {
		return err
	}
	sem := make(chan struct{}, 32)
	acks := make(chan error, 1)
	go func() {
		for range n {
			pk, err := c.r.ReadPacket()
			if err != nil {
				acks <- err
				return
			}
			if a, ok := pk.(*packet.Puback); !ok || a.ReasonCode != packet.Success {
				acks <- fmt.Errorf("publisher %d: unexpected %+v", p, pk)
				return
			}
			<-sem
		}
		acks <- nil
	}()
	for i := range n {
		sem <- struct{}{}
		pub := &packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: fmt.Sprintf("cp/%d", p), Payload: fmt.Appendf(nil, "%d:%d", p, i)}
		if err := packet.Write(c.nc, pub, packet.V5); err != nil {
			return err
		}
	}
	return <-acks
}
