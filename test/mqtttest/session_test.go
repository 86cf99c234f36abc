package mqtttest

import (
	"bytes"
	"testing"

	"github.com/eclipse/paho.golang/packets"
)

// A PUBREC read after the connection is lost is dropped, not answered on a
// connection that is gone (paho.golang v0.23.0 panics there).
func TestPubrecAfterConnectionLost(t *testing.T) {
	for _, name := range []string{"unknown id", "after close"} {
		t.Run(name, func(t *testing.T) {
			s := newSession()
			var out bytes.Buffer
			if err := s.ConAckReceived(&out, &packets.Connect{ClientID: "c"}, &packets.Connack{}); err != nil {
				t.Fatal(err)
			}
			if err := s.ConnectionLost(nil); err != nil {
				t.Fatal(err)
			}
			if name == "after close" {
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
			}
			pubrec := &packets.ControlPacket{Content: &packets.Pubrec{PacketID: 7}, FixedHeader: packets.FixedHeader{Type: packets.PUBREC}}
			if err := s.PacketReceived(pubrec, make(chan *packets.Publish, 1)); err != nil {
				t.Fatal(err)
			}
			if out.Len() != 0 {
				t.Fatalf("wrote %d bytes after the connection was lost", out.Len())
			}
		})
	}
}

// While connected, a PUBREC for an unknown packet identifier is answered
// with PUBREL "Packet Identifier not found", as before.
func TestPubrecWhileConnected(t *testing.T) {
	s := newSession()
	var out bytes.Buffer
	if err := s.ConAckReceived(&out, &packets.Connect{ClientID: "c"}, &packets.Connack{}); err != nil {
		t.Fatal(err)
	}
	pubrec := &packets.ControlPacket{Content: &packets.Pubrec{PacketID: 7}, FixedHeader: packets.FixedHeader{Type: packets.PUBREC}}
	if err := s.PacketReceived(pubrec, make(chan *packets.Publish, 1)); err != nil {
		t.Fatal(err)
	}
	if out.Len() == 0 || out.Bytes()[0]>>4 != packets.PUBREL {
		t.Fatalf("want a PUBREL, wrote % x", out.Bytes())
	}
}

// A Session remembers across connections the PUBREC it sent: a QoS 2
// PUBLISH resent with DUP after a reconnect is acknowledged, not handed to
// the application again. State of its own per connection (Dial) would
// hand it over twice.
func TestSessionKeepsQoS2StateAcrossConnections(t *testing.T) {
	expiry := uint32(60)
	connect := &packets.Connect{ClientID: "c", Properties: &packets.Properties{SessionExpiryInterval: &expiry}}
	publish := func(dup bool) *packets.ControlPacket {
		return &packets.ControlPacket{
			Content:     &packets.Publish{QoS: 2, PacketID: 5, Topic: "t", Duplicate: dup, Properties: &packets.Properties{}},
			FixedHeader: packets.FixedHeader{Type: packets.PUBLISH, Flags: 4},
		}
	}
	s := NewSession()
	defer s.Close()
	var first bytes.Buffer
	if err := s.g.ConAckReceived(&first, connect, &packets.Connack{}); err != nil {
		t.Fatal(err)
	}
	app := make(chan *packets.Publish, 2)
	if err := s.g.PacketReceived(publish(false), app); err != nil {
		t.Fatal(err)
	}
	if err := s.g.Ack(<-app); err != nil { // what paho does once the handler returned
		t.Fatal(err)
	}
	if err := s.g.ConnectionLost(nil); err != nil {
		t.Fatal(err)
	}
	var second bytes.Buffer
	if err := s.g.ConAckReceived(&second, connect, &packets.Connack{SessionPresent: true}); err != nil {
		t.Fatal(err)
	}
	if err := s.g.PacketReceived(publish(true), app); err != nil {
		t.Fatal(err)
	}
	if len(app) != 0 {
		t.Fatal("the resent QoS 2 PUBLISH reached the application twice")
	}
	if second.Len() == 0 || second.Bytes()[0]>>4 != packets.PUBREC {
		t.Fatalf("want the PUBREC sent again, wrote % x", second.Bytes())
	}

	// A fresh state, as Dial gives each connection, has no memory of it.
	fresh := newSession()
	if err := fresh.ConAckReceived(&bytes.Buffer{}, connect, &packets.Connack{SessionPresent: true}); err != nil {
		t.Fatal(err)
	}
	if err := fresh.PacketReceived(publish(true), app); err != nil {
		t.Fatal(err)
	}
	if len(app) != 1 {
		t.Fatal("a fresh state did not deliver the resent PUBLISH: the test above proves nothing")
	}
}
