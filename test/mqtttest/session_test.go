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
