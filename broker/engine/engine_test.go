package engine

import (
	"fmt"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
)

func TestConnectAndPing(t *testing.T) {
	b := startBroker(t, nil)
	for _, v := range []byte{packet.V311, packet.V5} {
		c := dialRaw(t, b.addr, v)
		ack := c.connect(&packet.Connect{ClientID: fmt.Sprintf("ping-%d", v), CleanStart: true, KeepAlive: 30})
		if ack.ReasonCode != packet.Success || ack.SessionPresent {
			t.Fatalf("v%d: CONNACK %+v", v, ack)
		}
		c.send(&packet.Pingreq{})
		if _, ok := c.recv().(*packet.Pingresp); !ok {
			t.Fatal("expected PINGRESP")
		}
		c.send(&packet.Disconnect{})
	}
}

func TestAssignedClientID(t *testing.T) {
	b := startBroker(t, nil)
	c := dialRaw(t, b.addr, packet.V5)
	ack := c.connect(&packet.Connect{CleanStart: true})
	if ack.Properties.AssignedClientIdentifier == nil || *ack.Properties.AssignedClientIdentifier == "" {
		t.Fatalf("no assigned client identifier: %+v", ack.Properties)
	}
	// 3.1.1: an empty client ID needs cleanSession=1 [MQTT-3.1.3-8].
	// The codec refuses to encode it, so the bytes are written by hand:
	// CONNECT, remaining length 12, "MQTT", level 4, flags 0 (cleanSession=0),
	// keep alive 60, client ID "".
	c3 := dialRaw(t, b.addr, packet.V311)
	if _, err := c3.nc.Write([]byte{0x10, 12, 0, 4, 'M', 'Q', 'T', 'T', 4, 0, 0, 60, 0, 0}); err != nil {
		t.Fatal(err)
	}
	if ack, ok := c3.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.RefusedIdentifierRejected {
		t.Fatalf("3.1.1 empty ID with cleanSession=0: %+v", ack)
	}
}

func TestQoS1RoundTrip(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, 7, packet.Subscription{Filter: "a/+", QoS: 1})
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	pub.send(&packet.Publish{QoS: 1, PacketID: 10, Topic: "a/b", Payload: []byte("x"),
		Properties: packet.Properties{User: []packet.UserProperty{{Key: "k", Value: "v"}}, ResponseTopic: strp("r/t"), CorrelationData: []byte{1}}})
	if ack, ok := pub.recv().(*packet.Puback); !ok || ack.PacketID != 10 || ack.ReasonCode != packet.Success {
		t.Fatalf("PUBACK %+v", ack)
	}
	got := sub.recvPublish()
	if got.Topic != "a/b" || string(got.Payload) != "x" || got.QoS != 1 || got.Dup {
		t.Fatalf("got %+v", got)
	}
	pr := got.Properties
	if len(pr.SubscriptionIdentifiers) != 1 || pr.SubscriptionIdentifiers[0] != 7 {
		t.Fatalf("subscription identifiers %v", pr.SubscriptionIdentifiers)
	}
	if len(pr.User) != 1 || pr.User[0].Key != "k" || pr.ResponseTopic == nil || *pr.ResponseTopic != "r/t" || len(pr.CorrelationData) != 1 {
		t.Fatalf("properties not forwarded: %+v", pr)
	}
	sub.send(&packet.Puback{PacketID: got.PacketID})
}

func strp(s string) *string { return &s }

func TestNoLocal(t *testing.T) {
	b := startBroker(t, nil)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "nl", CleanStart: true})
	c.subscribe(1, 0, packet.Subscription{Filter: "nl/#", QoS: 0, NoLocal: true})
	c.subscribe(2, 0, packet.Subscription{Filter: "other", QoS: 0})
	c.send(&packet.Publish{Topic: "nl/x", Payload: []byte("own")})
	c.send(&packet.Publish{Topic: "other", Payload: []byte("ok")})
	if p := c.recvPublish(); p.Topic != "other" {
		t.Fatalf("received own message on a No Local subscription: %+v", p)
	}
}

func TestTakeover(t *testing.T) {
	b := startBroker(t, nil)
	old := dialRaw(t, b.addr, packet.V5)
	old.connect(&packet.Connect{ClientID: "dup", CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: u32(60)}})
	old.subscribe(1, 0, packet.Subscription{Filter: "t", QoS: 1})
	nw := dialRaw(t, b.addr, packet.V5)
	ack := nw.connect(&packet.Connect{ClientID: "dup", Properties: packet.Properties{SessionExpiryInterval: u32(60)}})
	if !ack.SessionPresent {
		t.Fatal("session not present after takeover")
	}
	d := old.expectClosed()
	if d == nil || d.ReasonCode != packet.SessionTakenOver {
		t.Fatalf("old connection got %+v, want DISCONNECT 0x8E", d)
	}
	// The subscription survived the takeover.
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "p", CleanStart: true})
	pub.send(&packet.Publish{Topic: "t", Payload: []byte("after")})
	if p := nw.recvPublish(); string(p.Payload) != "after" {
		t.Fatalf("got %+v", p)
	}
}

func TestProtocolErrors(t *testing.T) {
	b := startBroker(t, nil)
	t.Run("second CONNECT", func(t *testing.T) {
		c := dialRaw(t, b.addr, packet.V5)
		c.connect(&packet.Connect{ClientID: "twice", CleanStart: true})
		c.send(&packet.Connect{ProtocolVersion: packet.V5, ClientID: "twice", CleanStart: true})
		if d := c.expectClosed(); d == nil || d.ReasonCode != packet.ProtocolError {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("publish before CONNECT", func(t *testing.T) {
		c := dialRaw(t, b.addr, packet.V5)
		c.send(&packet.Publish{Topic: "x"})
		c.expectClosed()
	})
	t.Run("bad topic alias", func(t *testing.T) {
		c := dialRaw(t, b.addr, packet.V5)
		c.connect(&packet.Connect{ClientID: "alias", CleanStart: true})
		c.send(&packet.Publish{Topic: "x", Properties: packet.Properties{TopicAlias: u16(1000)}})
		if d := c.expectClosed(); d == nil || d.ReasonCode != packet.TopicAliasInvalid {
			t.Fatalf("got %+v", d)
		}
	})
	t.Run("client ID too long", func(t *testing.T) {
		c := dialRaw(t, b.addr, packet.V5)
		id := make([]byte, 300)
		for i := range id {
			id[i] = 'a'
		}
		if ack := c.connect(&packet.Connect{ClientID: string(id), CleanStart: true}); ack.ReasonCode != packet.ClientIdentifierNotValid {
			t.Fatalf("got %v", ack.ReasonCode)
		}
	})
}

func TestConnectTimeout(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.ConnectTimeout = 100 * 1e6 // 100ms
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	start := time.Now()
	c.expectClosed()
	if time.Since(start) > 3*time.Second {
		t.Fatal("connection without CONNECT not closed in time")
	}
}

// TestConnectTimeoutPartialPacket: half a CONNECT, then nothing: the
// whole packet must arrive within limits.connectTimeout.
func TestConnectTimeoutPartialPacket(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.ConnectTimeout = config.Duration(time.Second)
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	if _, err := c.nc.Write([]byte{0x10, 0x20, 0x00, 0x04, 'M', 'Q'}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	c.expectClosed()
	if el := time.Since(start); el < 500*time.Millisecond || el > 3*time.Second {
		t.Fatalf("closed after %v, connectTimeout 1s", el)
	}
}
