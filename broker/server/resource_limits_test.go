package server

import (
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/session"
	"github.com/bollard-io/bollard/broker/store"
)

func emptyUserProps(n int) []packet.UserProperty { return make([]packet.UserProperty, n) }

// TestUserPropertyLimit: a PUBLISH with more user properties than
// limits.maxUserProperties ends the connection with 0x95 and is counted; one
// at the limit is delivered.
func TestUserPropertyLimit(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxUserProperties = 4
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "p", CleanStart: true})
	c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: "t", Properties: packet.Properties{User: emptyUserProps(4)}})
	if ack, ok := c.recv().(*packet.Puback); !ok || ack.ReasonCode >= 0x80 {
		t.Fatalf("publish at the limit: %+v", ack)
	}
	c.send(&packet.Publish{QoS: 1, PacketID: 2, Topic: "t", Properties: packet.Properties{User: emptyUserProps(5)}})
	if d := c.expectClosed(); d == nil || d.ReasonCode != packet.PacketTooLarge {
		t.Fatalf("DISCONNECT %+v, want 0x95", d)
	}
	if n := b.srv.Stats().Refusals[LimitUserProperties]; n != 1 {
		t.Fatalf("refusals[%s] = %d, want 1", LimitUserProperties, n)
	}
	// In CONNECT (before a session exists) it is refused the same way.
	c = dialRaw(t, b.addr, packet.V5)
	c.send(&packet.Connect{ProtocolVersion: packet.V5, ClientID: "q", Properties: packet.Properties{User: emptyUserProps(5)}})
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.PacketTooLarge {
		t.Fatalf("CONNACK %+v, want 0x95", ack)
	}
	if n := b.srv.Stats().Refusals[LimitUserProperties]; n != 2 {
		t.Fatalf("refusals[%s] = %d, want 2", LimitUserProperties, n)
	}
}

// TestMessageSizeIsEncodedSize: store.Message.Size counts exactly the 5.0
// PUBLISH the broker sends for it, plus the publisher and EntryOverhead,
// whatever properties it carries; 100,000 empty user properties count
// 500,000 bytes, not 0.
func TestMessageSizeIsEncodedSize(t *testing.T) {
	pf := byte(1)
	now := time.Now()
	many := make([]store.UserProperty, 100000)
	for name, m := range map[string]*store.Message{
		"bare":        {Topic: "a", Publisher: "p"},
		"payload":     {Topic: "a/b/c", Payload: make([]byte, 300), Publisher: "pub"},
		"all props":   {Topic: "t", Payload: []byte("x"), Publisher: "p", ExpiresAt: now.Add(time.Hour), Props: store.Properties{PayloadFormat: &pf, ContentType: "text/plain", ResponseTopic: "r/t", CorrelationData: []byte{}, UserProperties: []store.UserProperty{{Key: "k", Value: "v"}, {}}}},
		"user flood":  {Topic: "t", Publisher: "p", Props: store.Properties{UserProperties: many}},
		"long topic":  {Topic: strings.Repeat("a/", 5000), Payload: make([]byte, 20000), Publisher: "p"},
		"big payload": {Topic: "t", Payload: make([]byte, 3<<20), Publisher: "p"},
	} {
		c := &conn{version: packet.V5, srv: &Server{now: func() time.Time { return now }}}
		p := c.publishPacket(&session.Outgoing{Msg: m, QoS: 1, PacketID: 1}, now)
		wire, err := packet.Size(p, packet.V5)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if want := int64(wire+len(m.Publisher)) + store.EntryOverhead; m.Size() != want {
			t.Errorf("%s: Size() = %d, want %d (PUBLISH of %d bytes)", name, m.Size(), want, wire)
		}
	}
	if n := (&store.Message{Props: store.Properties{UserProperties: many}}).Size(); n < 500000 {
		t.Errorf("100,000 empty user properties count %d bytes", n)
	}
}
