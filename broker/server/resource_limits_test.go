package server

import (
	"testing"

	"github.com/bollard-io/bollard/broker/packet"
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
