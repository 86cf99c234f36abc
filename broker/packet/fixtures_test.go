package packet

import (
	"bytes"
	"reflect"
	"testing"
)

// fixture is one packet on the wire and its decoded value. Canonical
// fixtures are also what the encoder produces; decodeOnly ones use a longer
// form the encoder shortens.
type fixture struct {
	name       string
	version    byte
	wire       []byte
	packet     Packet
	decodeOnly bool
}

var fixtures = []fixture{
	{name: "CONNECT 3.1", version: 0, wire: []byte{
		0x10, 0x0F, // CONNECT, remaining length 15
		0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name
		0x03,       // protocol level 3
		0x02,       // flags: clean session
		0x00, 0x0A, // keep alive 10
		0x00, 0x01, 'c', // client id "c"
	}, packet: &Connect{ProtocolName: "MQIsdp", ProtocolVersion: V31, CleanStart: true, KeepAlive: 10, ClientID: "c"}},

	{name: "CONNECT 3.1.1 will user password", version: 0, wire: []byte{
		0x10, 0x1F, // CONNECT, remaining length 31
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x04,       // protocol level 4
		0xEE,       // flags: user, password, will retain, will QoS 1, will, clean
		0x00, 0x3C, // keep alive 60
		0x00, 0x03, 'c', 'i', 'd', // client id
		0x00, 0x03, 'w', '/', 't', // will topic
		0x00, 0x03, 'b', 'y', 'e', // will payload
		0x00, 0x01, 'u', // user name
		0x00, 0x01, 'p', // password
	}, packet: &Connect{ProtocolName: "MQTT", ProtocolVersion: V311, CleanStart: true, KeepAlive: 60,
		ClientID: "cid", WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "w/t",
		WillPayload: []byte("bye"), UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("p")}},

	{name: "CONNECT 5.0 properties will", version: 0, wire: []byte{
		0x10, 0x29, // CONNECT, remaining length 41
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x05,       // protocol level 5
		0x86,       // flags: user, will (QoS 0), clean start
		0x00, 0x00, // keep alive 0
		0x08,                         // property length 8
		0x11, 0x00, 0x00, 0x0E, 0x10, // session expiry interval 3600
		0x21, 0x00, 0x14, // receive maximum 20
		0x00, 0x02, 'c', '1', // client id
		0x07,       // will property length 7
		0x01, 0x01, // payload format indicator UTF-8
		0x18, 0x00, 0x00, 0x00, 0x05, // will delay interval 5
		0x00, 0x02, 'l', 'w', // will topic
		0x00, 0x01, 'x', // will payload
		0x00, 0x01, 'u', // user name
	}, packet: &Connect{ProtocolName: "MQTT", ProtocolVersion: V5, CleanStart: true, ClientID: "c1",
		Properties: Properties{SessionExpiryInterval: new(uint32(3600)), ReceiveMaximum: new(uint16(20))},
		WillFlag:   true, WillTopic: "lw", WillPayload: []byte("x"),
		WillProperties: Properties{PayloadFormatIndicator: new(byte(1)), WillDelayInterval: new(uint32(5))},
		UsernameFlag:   true, Username: "u"}},

	{name: "CONNACK 3.1 not authorized", version: V31, wire: []byte{
		0x20, 0x02, // CONNACK, remaining length 2
		0x00, // reserved
		0x05, // return code 5 not authorized
	}, packet: &Connack{ReasonCode: RefusedNotAuthorized}},

	{name: "CONNACK 3.1.1 session present", version: V311, wire: []byte{
		0x20, 0x02, // CONNACK, remaining length 2
		0x01, // session present
		0x00, // accepted
	}, packet: &Connack{SessionPresent: true}},

	{name: "CONNACK 5.0 properties", version: V5, wire: []byte{
		0x20, 0x0D, // CONNACK, remaining length 13
		0x00,                       // flags
		0x00,                       // success
		0x0A,                       // property length 10
		0x12, 0x00, 0x02, 'a', 'b', // assigned client identifier "ab"
		0x22, 0x00, 0x0A, // topic alias maximum 10
		0x24, 0x01, // maximum QoS 1
	}, packet: &Connack{Properties: Properties{AssignedClientIdentifier: new("ab"),
		TopicAliasMaximum: new(uint16(10)), MaximumQoS: new(byte(1))}}},

	{name: "PUBLISH 3.1.1 QoS 1 retain", version: V311, wire: []byte{
		0x33, 0x09, // PUBLISH QoS 1 retain, remaining length 9
		0x00, 0x03, 'a', '/', 'b', // topic
		0x00, 0x07, // packet id 7
		'h', 'i', // payload
	}, packet: &Publish{QoS: 1, Retain: true, Topic: "a/b", PacketID: 7, Payload: []byte("hi")}},

	{name: "PUBLISH 3.1 QoS 0 empty payload", version: V31, wire: []byte{
		0x30, 0x03, // PUBLISH QoS 0, remaining length 3
		0x00, 0x01, 't', // topic
	}, packet: &Publish{Topic: "t", Payload: []byte{}}},

	{name: "PUBLISH 5.0 QoS 2 dup properties", version: V5, wire: []byte{
		0x3C, 0x18, // PUBLISH DUP QoS 2, remaining length 24
		0x00, 0x01, 't', // topic
		0x00, 0x01, // packet id 1
		0x11,                         // property length 17
		0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry interval 60
		0x0B, 0x05, // subscription identifier 5
		0x0B, 0x80, 0x01, // subscription identifier 128
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
		'p', // payload
	}, packet: &Publish{Dup: true, QoS: 2, Topic: "t", PacketID: 1, Payload: []byte("p"),
		Properties: Properties{MessageExpiryInterval: new(uint32(60)),
			SubscriptionIdentifiers: []uint32{5, 128}, User: []UserProperty{{"k", "v"}}}}},

	{name: "PUBLISH 5.0 topic alias only", version: V5, wire: []byte{
		0x30, 0x06, // PUBLISH QoS 0, remaining length 6
		0x00, 0x00, // empty topic
		0x03,             // property length 3
		0x23, 0x00, 0x01, // topic alias 1
	}, packet: &Publish{Properties: Properties{TopicAlias: new(uint16(1))}, Payload: []byte{}}},

	{name: "PUBACK 3.1.1", version: V311, wire: []byte{
		0x40, 0x02, // PUBACK, remaining length 2
		0x00, 0x07, // packet id 7
	}, packet: &Puback{PacketID: 7}},

	{name: "PUBACK 5.0 short success", version: V5, wire: []byte{
		0x40, 0x02, // PUBACK, remaining length 2: success, no properties
		0x00, 0x07, // packet id 7
	}, packet: &Puback{PacketID: 7}},

	{name: "PUBACK 5.0 reason only", version: V5, wire: []byte{
		0x40, 0x03, // PUBACK, remaining length 3
		0x00, 0x07, // packet id 7
		0x10, // no matching subscribers
	}, packet: &Puback{PacketID: 7, ReasonCode: NoMatchingSubscribers}},

	{name: "PUBACK 5.0 long success", version: V5, decodeOnly: true, wire: []byte{
		0x40, 0x04, // PUBACK, remaining length 4
		0x00, 0x07, // packet id 7
		0x00, // success
		0x00, // property length 0
	}, packet: &Puback{PacketID: 7}},

	{name: "PUBACK 5.0 reason string", version: V5, wire: []byte{
		0x40, 0x08, // PUBACK, remaining length 8
		0x00, 0x07, // packet id 7
		0x97,                  // quota exceeded
		0x04,                  // property length 4
		0x1F, 0x00, 0x01, 'q', // reason string "q"
	}, packet: &Puback{PacketID: 7, ReasonCode: QuotaExceeded, Properties: Properties{ReasonString: new("q")}}},

	{name: "PUBREC 5.0", version: V5, wire: []byte{
		0x50, 0x03, // PUBREC, remaining length 3
		0x00, 0x01, // packet id 1
		0x80, // unspecified error
	}, packet: &Pubrec{PacketID: 1, ReasonCode: UnspecifiedError}},

	{name: "PUBREL 3.1.1", version: V311, wire: []byte{
		0x62, 0x02, // PUBREL flags 0010, remaining length 2
		0x00, 0x01, // packet id 1
	}, packet: &Pubrel{PacketID: 1}},

	{name: "PUBREL 3.1 with DUP", version: V31, decodeOnly: true, wire: []byte{
		0x6A, 0x02, // PUBREL flags 1010 (3.1 retry), remaining length 2
		0x00, 0x01, // packet id 1
	}, packet: &Pubrel{PacketID: 1}},

	{name: "PUBREL 5.0 not found", version: V5, wire: []byte{
		0x62, 0x03, // PUBREL flags 0010, remaining length 3
		0x00, 0x01, // packet id 1
		0x92, // packet identifier not found
	}, packet: &Pubrel{PacketID: 1, ReasonCode: PacketIdentifierNotFound}},

	{name: "PUBCOMP 3.1.1", version: V311, wire: []byte{
		0x70, 0x02, // PUBCOMP, remaining length 2
		0x00, 0x01, // packet id 1
	}, packet: &Pubcomp{PacketID: 1}},

	{name: "SUBSCRIBE 3.1.1", version: V311, wire: []byte{
		0x82, 0x0C, // SUBSCRIBE flags 0010, remaining length 12
		0x00, 0x0A, // packet id 10
		0x00, 0x03, 'a', '/', '#', // filter
		0x01,            // QoS 1
		0x00, 0x01, 'b', // filter
		0x02, // QoS 2
	}, packet: &Subscribe{PacketID: 10, Subscriptions: []Subscription{{Filter: "a/#", QoS: 1}, {Filter: "b", QoS: 2}}}},

	{name: "SUBSCRIBE 5.0 options", version: V5, wire: []byte{
		0x82, 0x0B, // SUBSCRIBE flags 0010, remaining length 11
		0x00, 0x0B, // packet id 11
		0x02,       // property length 2
		0x0B, 0x07, // subscription identifier 7
		0x00, 0x03, 'x', '/', '+', // filter
		0x2D, // retain handling 2, retain as published, no local, QoS 1
	}, packet: &Subscribe{PacketID: 11, Properties: Properties{SubscriptionIdentifiers: []uint32{7}},
		Subscriptions: []Subscription{{Filter: "x/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}},

	{name: "SUBACK 3.1.1", version: V311, wire: []byte{
		0x90, 0x04, // SUBACK, remaining length 4
		0x00, 0x0A, // packet id 10
		0x01, // granted QoS 1
		0x80, // failure
	}, packet: &Suback{PacketID: 10, ReasonCodes: []ReasonCode{GrantedQoS1, SubackFailure}}},

	{name: "SUBACK 5.0", version: V5, wire: []byte{
		0x90, 0x05, // SUBACK, remaining length 5
		0x00, 0x0B, // packet id 11
		0x00, // property length 0
		0x01, // granted QoS 1
		0xA2, // wildcard subscriptions not supported
	}, packet: &Suback{PacketID: 11, ReasonCodes: []ReasonCode{GrantedQoS1, WildcardSubscriptionsNotSupported}}},

	{name: "UNSUBSCRIBE 3.1.1", version: V311, wire: []byte{
		0xA2, 0x07, // UNSUBSCRIBE flags 0010, remaining length 7
		0x00, 0x0C, // packet id 12
		0x00, 0x03, 'a', '/', '#', // filter
	}, packet: &Unsubscribe{PacketID: 12, Filters: []string{"a/#"}}},

	{name: "UNSUBSCRIBE 5.0 user property", version: V5, wire: []byte{
		0xA2, 0x0D, // UNSUBSCRIBE flags 0010, remaining length 13
		0x00, 0x0C, // packet id 12
		0x07,                                   // property length 7
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
		0x00, 0x01, 't', // filter
	}, packet: &Unsubscribe{PacketID: 12, Properties: Properties{User: []UserProperty{{"k", "v"}}}, Filters: []string{"t"}}},

	{name: "UNSUBACK 3.1.1", version: V311, wire: []byte{
		0xB0, 0x02, // UNSUBACK, remaining length 2
		0x00, 0x0C, // packet id 12
	}, packet: &Unsuback{PacketID: 12}},

	{name: "UNSUBACK 5.0", version: V5, wire: []byte{
		0xB0, 0x05, // UNSUBACK, remaining length 5
		0x00, 0x0C, // packet id 12
		0x00, // property length 0
		0x11, // no subscription existed
		0x00, // success
	}, packet: &Unsuback{PacketID: 12, ReasonCodes: []ReasonCode{NoSubscriptionExisted, Success}}},

	{name: "PINGREQ", version: V311, wire: []byte{0xC0, 0x00}, packet: &Pingreq{}},
	{name: "PINGRESP", version: V5, wire: []byte{0xD0, 0x00}, packet: &Pingresp{}},

	{name: "DISCONNECT 3.1.1", version: V311, wire: []byte{0xE0, 0x00}, packet: &Disconnect{}},
	{name: "DISCONNECT 5.0 short", version: V5, wire: []byte{0xE0, 0x00}, packet: &Disconnect{}},

	{name: "DISCONNECT 5.0 reason only", version: V5, wire: []byte{
		0xE0, 0x01, // DISCONNECT, remaining length 1
		0x8E, // session taken over
	}, packet: &Disconnect{ReasonCode: SessionTakenOver}},

	{name: "DISCONNECT 5.0 session expiry", version: V5, wire: []byte{
		0xE0, 0x07, // DISCONNECT, remaining length 7
		0x00,                         // normal disconnection
		0x05,                         // property length 5
		0x11, 0x00, 0x00, 0x00, 0x00, // session expiry interval 0
	}, packet: &Disconnect{Properties: Properties{SessionExpiryInterval: new(uint32(0))}}},

	{name: "AUTH 5.0 short", version: V5, wire: []byte{0xF0, 0x00}, packet: &Auth{}},

	{name: "AUTH 5.0 continue", version: V5, wire: []byte{
		0xF0, 0x0A, // AUTH, remaining length 10
		0x18,                  // continue authentication
		0x08,                  // property length 8
		0x15, 0x00, 0x01, 'm', // authentication method "m"
		0x16, 0x00, 0x01, 0x01, // authentication data 0x01
	}, packet: &Auth{ReasonCode: ContinueAuthentication,
		Properties: Properties{AuthenticationMethod: new("m"), AuthenticationData: []byte{1}}}},
}

func TestFixturesDecode(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			got, err := Decode(f.wire, f.version)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if !reflect.DeepEqual(got, f.packet) {
				t.Fatalf("Decode:\n got %#v\nwant %#v", got, f.packet)
			}
		})
	}
}

func TestFixturesEncode(t *testing.T) {
	for _, f := range fixtures {
		if f.decodeOnly {
			continue
		}
		t.Run(f.name, func(t *testing.T) {
			v := f.version
			if v == 0 {
				v = V5 // CONNECT carries its own version
			}
			got, err := Append([]byte{0xAA}, f.packet, v)
			if err != nil {
				t.Fatalf("Append: %v", err)
			}
			if got[0] != 0xAA || !bytes.Equal(got[1:], f.wire) {
				t.Fatalf("Append:\n got % X\nwant    % X", got, f.wire)
			}
			n, err := Size(f.packet, v)
			if err != nil || n != len(f.wire) {
				t.Fatalf("Size = %d, %v; want %d", n, err, len(f.wire))
			}
		})
	}
}
