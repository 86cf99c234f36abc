package packet

import (
	"bytes"
	"errors"
	"testing"
)

// Abbreviations for the expected Reason Codes.
const (
	mal   = MalformedPacket
	proto = ProtocolError
)

// connect5 builds a 5.0 CONNECT body around the given connect flags,
// properties and payload, so cases change only what they test.
func connect5(flags byte, props []byte, payload ...byte) []byte {
	body := []byte{0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05, flags, 0x00, 0x00, byte(len(props))}
	body = append(append(body, props...), payload...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

// connectV builds a CONNECT for any protocol name and level without
// properties.
func connectV(name string, level, flags byte, payload ...byte) []byte {
	body := append([]byte{0x00, byte(len(name))}, name...)
	body = append(body, level, flags, 0x00, 0x00)
	body = append(body, payload...)
	return append([]byte{0x10, byte(len(body))}, body...)
}

func TestDecodeErrors(t *testing.T) {
	cid := []byte{0x00, 0x01, 'c'}
	tests := []struct {
		name    string
		version byte
		wire    []byte
		want    ReasonCode
	}{
		{"too short", V5, []byte{0xC0}, mal},
		{"varint five bytes", V5, []byte{0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}, mal},
		{"varint not minimal", V5, []byte{0xC0, 0x80, 0x00}, mal},
		{"varint truncated", V5, []byte{0x30, 0x80}, mal},
		{"remaining length mismatch", V5, []byte{0x30, 0x05, 0x00, 0x01, 'a'}, mal},
		{"reserved type 0", V5, []byte{0x00, 0x00}, mal},
		{"AUTH in 3.1.1", V311, []byte{0xF0, 0x00}, mal},
		{"bad version argument", 6, []byte{0xC0, 0x00}, UnsupportedProtocolVersion},
		{"first packet not CONNECT", 0, []byte{0xC0, 0x00}, proto},
		{"PUBREL flags 0000", V311, []byte{0x60, 0x02, 0x00, 0x01}, mal},
		{"PUBREL DUP in 3.1.1", V311, []byte{0x6A, 0x02, 0x00, 0x01}, mal},
		{"SUBSCRIBE flags 0000", V311, []byte{0x80, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x00}, mal},
		{"UNSUBSCRIBE flags 0011", V5, []byte{0xA3, 0x06, 0x00, 0x01, 0x00, 0x00, 0x01, 'a'}, mal},
		{"PINGREQ flags 0001", V5, []byte{0xC1, 0x00}, mal},
		{"PINGREQ with body", V5, []byte{0xC0, 0x01, 0x00}, mal},
		{"DISCONNECT 3.1.1 with body", V311, []byte{0xE0, 0x01, 0x00}, mal},

		// PUBLISH
		{"PUBLISH QoS 3", V311, []byte{0x36, 0x03, 0x00, 0x01, 'a'}, mal},
		{"PUBLISH DUP QoS 0", V311, []byte{0x38, 0x03, 0x00, 0x01, 'a'}, proto},
		{"PUBLISH wildcard +", V311, []byte{0x30, 0x05, 0x00, 0x03, 'a', '/', '+'}, TopicNameInvalid},
		{"PUBLISH wildcard #", V5, []byte{0x30, 0x04, 0x00, 0x01, '#', 0x00}, TopicNameInvalid},
		{"PUBLISH invalid UTF-8", V311, []byte{0x30, 0x04, 0x00, 0x02, 0xC3, 0x28}, mal},
		{"PUBLISH U+0000", V311, []byte{0x30, 0x04, 0x00, 0x02, 'a', 0x00}, mal},
		{"PUBLISH UTF-16 surrogate", V311, []byte{0x30, 0x05, 0x00, 0x03, 0xED, 0xA0, 0x80}, mal},
		{"PUBLISH overlong UTF-8", V311, []byte{0x30, 0x04, 0x00, 0x02, 0xC0, 0xAF}, mal},
		{"PUBLISH string overruns", V311, []byte{0x30, 0x03, 0x00, 0x05, 'a'}, mal},
		{"PUBLISH packet id missing", V311, []byte{0x32, 0x04, 0x00, 0x01, 'a', 0x00}, mal},
		{"PUBLISH packet id 0", V311, []byte{0x32, 0x05, 0x00, 0x01, 'a', 0x00, 0x00}, proto},
		{"PUBLISH empty topic 3.1.1", V311, []byte{0x30, 0x02, 0x00, 0x00}, proto},
		{"PUBLISH empty topic no alias", V5, []byte{0x30, 0x03, 0x00, 0x00, 0x00}, proto},
		{"PUBLISH topic alias 0", V5, []byte{0x30, 0x07, 0x00, 0x01, 'a', 0x03, 0x23, 0x00, 0x00}, TopicAliasInvalid},
		{"PUBLISH property length missing", V5, []byte{0x30, 0x03, 0x00, 0x01, 'a'}, mal},
		{"PUBLISH property length overruns", V5, []byte{0x30, 0x04, 0x00, 0x01, 'a', 0x05}, mal},
		{"PUBLISH property truncated", V5, []byte{0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x02, 0x00}, mal},
		{"PUBLISH duplicate property", V5, []byte{0x30, 0x0E, 0x00, 0x01, 'a', 0x0A,
			0x02, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x01}, proto},
		{"PUBLISH property not allowed", V5, []byte{0x30, 0x0A, 0x00, 0x01, 'a', 0x05, 0x11, 0x00, 0x00, 0x00, 0x01}, mal},
		{"PUBLISH unknown property", V5, []byte{0x30, 0x07, 0x00, 0x01, 'a', 0x02, 0x7F, 0x00}, mal},
		{"PUBLISH property id 0", V5, []byte{0x30, 0x07, 0x00, 0x01, 'a', 0x02, 0x00, 0x00}, mal},
		{"PUBLISH payload format 2", V5, []byte{0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x01, 0x02}, proto},
		{"PUBLISH subscription identifier 0", V5, []byte{0x30, 0x06, 0x00, 0x01, 'a', 0x02, 0x0B, 0x00}, proto},
		{"PUBLISH content type bad UTF-8", V5, []byte{0x30, 0x0A, 0x00, 0x01, 'a', 0x05, 0x03, 0x00, 0x02, 0xFF, 0xFE}, mal},
		{"PUBLISH user property truncated", V5, []byte{0x30, 0x0A, 0x00, 0x01, 'a', 0x05, 0x26, 0x00, 0x01, 'k', 0x00}, mal},

		// CONNECT
		{"CONNECT protocol level 6", 0, connectV("MQTT", 6, 0x02, cid...), UnsupportedProtocolVersion},
		{"CONNECT MQTT level 3", 0, connectV("MQTT", 3, 0x02, cid...), UnsupportedProtocolVersion},
		{"CONNECT MQIsdp level 4", 0, connectV("MQIsdp", 4, 0x02, cid...), UnsupportedProtocolVersion},
		{"CONNECT unknown name", 0, connectV("HTTP", 4, 0x02, cid...), UnsupportedProtocolVersion},
		{"CONNECT bridge bit level", 0, connectV("MQTT", 0x84, 0x02, cid...), UnsupportedProtocolVersion},
		{"CONNECT reserved flag", 0, connectV("MQTT", 4, 0x03, cid...), mal},
		{"CONNECT will QoS 3", 0, connectV("MQTT", 4, 0x1E, cid...), mal},
		{"CONNECT will QoS without will", 0, connectV("MQTT", 4, 0x0A, cid...), mal},
		{"CONNECT will retain without will", 0, connectV("MQTT", 4, 0x22, cid...), mal},
		{"CONNECT 3.1.1 password without user", 0, connectV("MQTT", 4, 0x42, append(cid, 0x00, 0x01, 'p')...), mal},
		{"CONNECT 3.1.1 empty client id persistent", 0, connectV("MQTT", 4, 0x00, 0x00, 0x00), ClientIdentifierNotValid},
		{"CONNECT 3.1 empty client id", 0, connectV("MQIsdp", 3, 0x02, 0x00, 0x00), ClientIdentifierNotValid},
		{"CONNECT trailing bytes", 0, connectV("MQTT", 4, 0x02, append(cid, 0x00)...), mal},
		{"CONNECT truncated will", 0, connectV("MQTT", 4, 0x06, append(cid, 0x00, 0x01, 't')...), mal},
		{"CONNECT will topic wildcard", 0, connectV("MQTT", 4, 0x06, append(cid, 0x00, 0x01, '#', 0x00, 0x00)...), TopicNameInvalid},
		{"CONNECT missing keep alive", 0, []byte{0x10, 0x08, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02}, mal},
		{"CONNECT 5.0 will property not allowed", 0, connect5(0x06, nil, append(cid, 0x03, 0x23, 0x00, 0x01, 0x00, 0x01, 't', 0x00, 0x00)...), mal},
		{"CONNECT 5.0 auth data without method", 0, connect5(0x02, []byte{0x16, 0x00, 0x00}, cid...), proto},
		{"CONNECT 5.0 receive maximum 0", 0, connect5(0x02, []byte{0x21, 0x00, 0x00}, cid...), proto},
		{"CONNECT 5.0 maximum packet size 0", 0, connect5(0x02, []byte{0x27, 0, 0, 0, 0}, cid...), proto},
		{"CONNECT 5.0 request problem information 2", 0, connect5(0x02, []byte{0x17, 0x02}, cid...), proto},
		{"CONNECT 5.0 duplicate session expiry", 0, connect5(0x02, []byte{0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1}, cid...), proto},
		{"CONNECT 5.0 topic alias not allowed", 0, connect5(0x02, []byte{0x23, 0x00, 0x01}, cid...), mal},

		// CONNACK
		{"CONNACK 3.1.1 reserved flags", V311, []byte{0x20, 0x02, 0x02, 0x00}, mal},
		{"CONNACK 3.1.1 return code 6", V311, []byte{0x20, 0x02, 0x00, 0x06}, proto},
		{"CONNACK 3.1.1 length 3", V311, []byte{0x20, 0x03, 0x00, 0x00, 0x00}, mal},
		{"CONNACK 5.0 session present with error", V5, []byte{0x20, 0x03, 0x01, 0x80, 0x00}, proto},
		{"CONNACK 5.0 reason code 0x04", V5, []byte{0x20, 0x03, 0x00, 0x04, 0x00}, proto},
		{"CONNACK 5.0 maximum QoS 2", V5, []byte{0x20, 0x05, 0x00, 0x00, 0x02, 0x24, 0x02}, proto},
		{"CONNACK 5.0 no property length", V5, []byte{0x20, 0x02, 0x00, 0x00}, mal},
		{"CONNACK 5.0 trailing", V5, []byte{0x20, 0x04, 0x00, 0x00, 0x00, 0x00}, mal},

		// acknowledgements
		{"PUBACK 3.1.1 length 3", V311, []byte{0x40, 0x03, 0x00, 0x01, 0x00}, mal},
		{"PUBACK truncated", V5, []byte{0x40, 0x01, 0x00}, mal},
		{"PUBACK packet id 0", V5, []byte{0x40, 0x02, 0x00, 0x00}, proto},
		{"PUBACK 5.0 reason 0x92", V5, []byte{0x40, 0x03, 0x00, 0x01, 0x92}, proto},
		{"PUBREL 5.0 reason 0x10", V5, []byte{0x62, 0x03, 0x00, 0x01, 0x10}, proto},
		{"PUBCOMP 5.0 trailing", V5, []byte{0x70, 0x05, 0x00, 0x01, 0x00, 0x00, 0x00}, mal},
		{"PUBREC 5.0 topic alias", V5, []byte{0x50, 0x07, 0x00, 0x01, 0x00, 0x03, 0x23, 0x00, 0x01}, mal},

		// SUBSCRIBE family
		{"SUBSCRIBE no filters", V311, []byte{0x82, 0x02, 0x00, 0x01}, proto},
		{"SUBSCRIBE 5.0 no filters", V5, []byte{0x82, 0x03, 0x00, 0x01, 0x00}, proto},
		{"SUBSCRIBE QoS 3", V311, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x03}, mal},
		{"SUBSCRIBE 5.0 QoS 3", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x03}, proto},
		{"SUBSCRIBE 3.1.1 reserved bits", V311, []byte{0x82, 0x06, 0x00, 0x01, 0x00, 0x01, 'a', 0x04}, mal},
		{"SUBSCRIBE 5.0 reserved bits", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x40}, mal},
		{"SUBSCRIBE 5.0 retain handling 3", V5, []byte{0x82, 0x07, 0x00, 0x01, 0x00, 0x00, 0x01, 'a', 0x30}, proto},
		{"SUBSCRIBE 5.0 no local shared", V5, append([]byte{0x82, 0x10, 0x00, 0x01, 0x00, 0x00, 0x0A}, append([]byte("$share/g/a"), 0x04)...), proto},
		{"SUBSCRIBE 5.0 two subscription ids", V5, []byte{0x82, 0x0B, 0x00, 0x01, 0x04, 0x0B, 0x01, 0x0B, 0x02, 0x00, 0x01, 'a', 0x00}, proto},
		{"SUBSCRIBE options missing", V311, []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x01, 'a'}, mal},
		{"SUBACK 3.1.1 code 3", V311, []byte{0x90, 0x03, 0x00, 0x01, 0x03}, proto},
		{"SUBACK no codes", V311, []byte{0x90, 0x02, 0x00, 0x01}, proto},
		{"SUBACK 5.0 code 0x10", V5, []byte{0x90, 0x04, 0x00, 0x01, 0x00, 0x10}, proto},
		{"UNSUBSCRIBE no filters", V311, []byte{0xA2, 0x02, 0x00, 0x01}, proto},
		{"UNSUBSCRIBE bad UTF-8", V311, []byte{0xA2, 0x05, 0x00, 0x01, 0x00, 0x01, 0xFF}, mal},
		{"UNSUBACK 3.1.1 with codes", V311, []byte{0xB0, 0x03, 0x00, 0x01, 0x00}, mal},
		{"UNSUBACK 5.0 no codes", V5, []byte{0xB0, 0x03, 0x00, 0x01, 0x00}, proto},
		{"UNSUBACK 5.0 code 0x01", V5, []byte{0xB0, 0x04, 0x00, 0x01, 0x00, 0x01}, proto},

		// DISCONNECT, AUTH
		{"DISCONNECT 5.0 code 0x01", V5, []byte{0xE0, 0x01, 0x01}, proto},
		{"DISCONNECT 5.0 property overrun", V5, []byte{0xE0, 0x02, 0x00, 0x01}, mal},
		{"DISCONNECT 5.0 assigned client id", V5, []byte{0xE0, 0x06, 0x00, 0x04, 0x12, 0x00, 0x01, 'a'}, mal},
		{"AUTH code 0x80", V5, []byte{0xF0, 0x01, 0x80}, proto},
		{"AUTH data without method", V5, []byte{0xF0, 0x05, 0x18, 0x03, 0x16, 0x00, 0x00}, proto},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(tt.wire, tt.version)
			if err == nil {
				t.Fatalf("Decode(% X) succeeded, want reason 0x%02X", tt.wire, byte(tt.want))
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("Decode error %v (%T) is not an *Error", err, err)
			}
			if e.Code != tt.want || ReasonCodeOf(err) != tt.want {
				t.Fatalf("Decode error %v: code 0x%02X, want 0x%02X", err, byte(e.Code), byte(tt.want))
			}
			if !errors.Is(err, &Error{Code: tt.want}) {
				t.Fatalf("errors.Is(%v, code 0x%02X) is false", err, byte(tt.want))
			}
			if msg := err.Error(); len(msg) < 8 || msg[:8] != "packet: " {
				t.Fatalf("error %q lacks the package prefix", msg)
			}
		})
	}
}

// TestConnectErrorKeepsVersion checks that a CONNECT rejected after its
// level was read comes back with the error, so the server can answer.
func TestConnectErrorKeepsVersion(t *testing.T) {
	p, err := Decode(connectV("MQTT", 6, 0x02, 0x00, 0x01, 'c'), 0)
	if !errors.Is(err, ErrUnsupportedVersion) {
		t.Fatalf("err = %v, want unsupported protocol version", err)
	}
	c, ok := p.(*Connect)
	if !ok || c.ProtocolVersion != 6 {
		t.Fatalf("packet = %#v, want *Connect with ProtocolVersion 6", p)
	}
	if LegacyConnackCode(ReasonCodeOf(err)) != RefusedUnacceptableProtocolVersion {
		t.Fatalf("legacy code %v", LegacyConnackCode(ReasonCodeOf(err)))
	}
	p, err = Decode(connect5(0x02, []byte{0x21, 0x00, 0x00}, 0x00, 0x01, 'c'), 0)
	if c, ok := p.(*Connect); !ok || c.ProtocolVersion != V5 || !errors.Is(err, ErrProtocol) {
		t.Fatalf("got %#v, %v", p, err)
	}
	// Without a protocol level there is nothing to answer in.
	if p, err := Decode([]byte{0x10, 0x02, 0x00, 0x04}, 0); p != nil || !errors.Is(err, ErrMalformed) {
		t.Fatalf("got %#v, %v", p, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	long := string(bytes.Repeat([]byte("a"), 65536))
	tests := []struct {
		name    string
		p       Packet
		version byte
		want    ReasonCode
	}{
		{"PUBLISH QoS 3", &Publish{QoS: 3, Topic: "a", PacketID: 1}, V311, mal},
		{"PUBLISH DUP QoS 0", &Publish{Dup: true, Topic: "a"}, V311, proto},
		{"PUBLISH packet id 0", &Publish{QoS: 1, Topic: "a"}, V5, proto},
		{"PUBLISH wildcard", &Publish{Topic: "a/#"}, V5, TopicNameInvalid},
		{"PUBLISH alias in 3.1.1", &Publish{Properties: Properties{TopicAlias: new(uint16(1))}}, V311, proto},
		{"PUBLISH topic too long", &Publish{Topic: long}, V311, mal},
		{"PUBLISH NUL", &Publish{Topic: "a\x00"}, V311, mal},
		{"PUBLISH bad user property", &Publish{Topic: "a", Properties: Properties{User: []UserProperty{{"\xff", ""}}}}, V5, mal},
		{"PUBLISH session expiry", &Publish{Topic: "a", Properties: Properties{SessionExpiryInterval: new(uint32(1))}}, V5, mal},
		{"PUBLISH subscription id too big", &Publish{Topic: "a", Properties: Properties{SubscriptionIdentifiers: []uint32{MaxVarint + 1}}}, V5, proto},
		{"CONNACK topic alias", &Connack{Properties: Properties{TopicAlias: new(uint16(1))}}, V5, mal},
		{"CONNACK session present error", &Connack{SessionPresent: true, ReasonCode: NotAuthorized}, V5, proto},
		{"CONNACK bad code", &Connack{ReasonCode: GrantedQoS1}, V5, proto},
		{"CONNECT will QoS without will", &Connect{ProtocolVersion: V5, WillQoS: 1}, V5, mal},
		{"CONNECT password too long", &Connect{ProtocolVersion: V5, PasswordFlag: true, Password: []byte(long)}, V5, mal},
		{"CONNECT 3.1.1 empty client id", &Connect{ProtocolVersion: V311}, V311, ClientIdentifierNotValid},
		{"CONNECT bad level", &Connect{ProtocolVersion: 7}, V5, UnsupportedProtocolVersion},
		{"PUBACK id 0", &Puback{}, V311, proto},
		{"PUBREL bad code", &Pubrel{PacketID: 1, ReasonCode: QuotaExceeded}, V5, proto},
		{"SUBSCRIBE empty", &Subscribe{PacketID: 1}, V5, proto},
		{"SUBSCRIBE QoS 3", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 3}}}, V311, mal},
		{"SUBSCRIBE 5.0 QoS 3", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 3}}}, V5, proto},
		{"SUBSCRIBE retain handling 3", &Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", RetainHandling: 3}}}, V5, proto},
		{"SUBSCRIBE two ids", &Subscribe{PacketID: 1, Properties: Properties{SubscriptionIdentifiers: []uint32{1, 2}},
			Subscriptions: []Subscription{{Filter: "a"}}}, V5, proto},
		{"SUBACK empty", &Suback{PacketID: 1}, V311, proto},
		{"UNSUBSCRIBE empty", &Unsubscribe{PacketID: 1}, V311, proto},
		{"UNSUBACK 5.0 empty", &Unsuback{PacketID: 1}, V5, proto},
		{"DISCONNECT bad code", &Disconnect{ReasonCode: GrantedQoS1}, V5, proto},
		{"AUTH in 3.1.1", &Auth{}, V311, proto},
		{"bad version", &Pingreq{}, 2, UnsupportedProtocolVersion},
		{"too large", &Publish{Topic: "a", Payload: make([]byte, MaxVarint)}, V311, PacketTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Append(nil, tt.p, tt.version); ReasonCodeOf(err) != tt.want {
				t.Fatalf("Append error %v, want code 0x%02X", err, byte(tt.want))
			}
			if _, err := Size(tt.p, tt.version); ReasonCodeOf(err) != tt.want {
				t.Fatalf("Size error %v, want code 0x%02X", err, byte(tt.want))
			}
		})
	}
}

type foreign struct{}

func (foreign) Type() Type { return PINGREQ }

func TestEncodeForeignPacket(t *testing.T) {
	if _, err := Append(nil, foreign{}, V5); err == nil {
		t.Fatal("Append of a foreign Packet succeeded")
	}
}
