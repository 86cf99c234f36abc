package engine

import (
	"context"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
)

// A quiesced server takes no new work: a publish read afterwards is not
// answered (nor stored), a new CONNECT is refused with Server unavailable;
// a subscriber is sent nothing new; and the handover that follows still
// tells every client where to go.
func TestQuiesceTakesNoNewWork(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "t", QoS: 1})
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	pub.send(&packet.Publish{QoS: 1, Topic: "t", PacketID: 1, Payload: []byte("before")})
	if ack, ok := pub.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("before quiescing: %+v, want PUBACK Success", ack)
	}
	sub.recvPublish()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.srv.Quiesce(ctx); err != nil {
		t.Fatal(err)
	}
	pub.send(&packet.Publish{QoS: 1, Topic: "t", PacketID: 2, Payload: []byte("after")})
	pub.expectNothing(300 * time.Millisecond)
	sub.expectNothing(100 * time.Millisecond)
	late := dialRaw(t, b.addr, packet.V5)
	if ack := late.connect(&packet.Connect{ClientID: "late", CleanStart: true}); ack.ReasonCode != packet.ServerUnavailable {
		t.Fatalf("CONNECT after Quiesce: 0x%02X, want 0x88 Server unavailable", byte(ack.ReasonCode))
	}

	hctx, hcancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer hcancel()
	if err := b.srv.Handover(hctx, "127.0.0.1:1884"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*rawClient{pub, sub} {
		d := c.expectClosed()
		if d == nil || d.ReasonCode != packet.UseAnotherServer {
			t.Fatalf("handover after Quiesce: %+v, want DISCONNECT 0x9C", d)
		}
	}
	if err := b.st.ReadQueue("sub", 0, 10, func(_ store.QueueEntry, m *store.Message) bool {
		if string(m.Payload) != "before" {
			t.Errorf("queued %q: a publish read after Quiesce was stored", m.Payload)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
}
