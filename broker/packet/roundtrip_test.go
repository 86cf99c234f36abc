package packet

import (
	"bufio"
	"bytes"
	"fmt"
	"reflect"
	"testing"
)

// allConnackProps sets every property CONNACK may carry.
func allConnackProps() Properties {
	return Properties{
		SessionExpiryInterval:           new(uint32(7200)),
		AssignedClientIdentifier:        new("auto-1"),
		ServerKeepAlive:                 new(uint16(30)),
		AuthenticationMethod:            new("SCRAM-SHA-1"),
		AuthenticationData:              []byte{1, 2, 3},
		ResponseInformation:             new("resp/"),
		ServerReference:                 new("other:1883"),
		ReasonString:                    new("welcome"),
		ReceiveMaximum:                  new(uint16(100)),
		TopicAliasMaximum:               new(uint16(0)),
		MaximumQoS:                      new(byte(1)),
		RetainAvailable:                 new(byte(0)),
		User:                            []UserProperty{{"a", "1"}, {"a", "2"}, {"", ""}},
		MaximumPacketSize:               new(uint32(1 << 20)),
		WildcardSubscriptionAvailable:   new(byte(1)),
		SubscriptionIdentifierAvailable: new(byte(0)),
		SharedSubscriptionAvailable:     new(byte(1)),
	}
}

// allPublishProps sets every property PUBLISH may carry.
func allPublishProps() Properties {
	return Properties{
		PayloadFormatIndicator:  new(byte(1)),
		MessageExpiryInterval:   new(uint32(0)),
		ContentType:             new("text/plain"),
		ResponseTopic:           new("reply/to"),
		CorrelationData:         []byte{},
		SubscriptionIdentifiers: []uint32{1, 127, 128, 16383, 16384, MaxVarint},
		TopicAlias:              new(uint16(65535)),
		User:                    []UserProperty{{"k", "v"}},
	}
}

// samples returns valid packets of every type for version v, using only the
// fields that version carries so a round trip must reproduce them exactly.
func samples(v byte) []Packet {
	five := v == V5
	pick := func(p Properties) Properties {
		if five {
			return p
		}
		return Properties{}
	}
	codes := func(c ...ReasonCode) []ReasonCode {
		if five {
			return c
		}
		return nil
	}
	rc := func(c ReasonCode) ReasonCode {
		if five {
			return c
		}
		return Success
	}
	connackCode := RefusedServerUnavailable
	if five {
		connackCode = ServerBusy
	}
	reason := Properties{ReasonString: new("why"), User: []UserProperty{{"x", "y"}}}
	connect := &Connect{ProtocolName: protocolName(v), ProtocolVersion: v, KeepAlive: 65535,
		ClientID: "client-ü", WillFlag: true, WillQoS: 2, WillTopic: "will/topic",
		WillPayload: []byte{0, 1, 2}, UsernameFlag: true, Username: "user",
		PasswordFlag: true, Password: []byte{}}
	if five {
		connect.Properties = Properties{SessionExpiryInterval: new(uint32(0xFFFFFFFF)),
			AuthenticationMethod: new("m"), AuthenticationData: []byte("d"),
			RequestProblemInformation: new(byte(0)), RequestResponseInformation: new(byte(1)),
			ReceiveMaximum: new(uint16(1)), TopicAliasMaximum: new(uint16(5)),
			User: []UserProperty{{"u", "p"}}, MaximumPacketSize: new(uint32(1))}
		connect.WillProperties = allPublishProps()
		connect.WillProperties.SubscriptionIdentifiers, connect.WillProperties.TopicAlias = nil, nil
		connect.WillProperties.WillDelayInterval = new(uint32(9))
	}
	subs := []Subscription{{Filter: "a/+/c", QoS: 0}, {Filter: "#", QoS: 2}}
	if five {
		subs = append(subs, Subscription{Filter: "$share/g/x", QoS: 1, RetainAsPublished: true, RetainHandling: 1})
	}
	pub := &Publish{QoS: 1, Retain: true, Topic: "a/b", PacketID: 65535,
		Payload: bytes.Repeat([]byte("x"), 300), Properties: pick(allPublishProps())}
	if !five {
		pub.Topic = "t"
	}
	return []Packet{
		connect,
		&Connect{ProtocolName: protocolName(v), ProtocolVersion: v, CleanStart: true, ClientID: "c"},
		&Connack{SessionPresent: v != V31, Properties: pick(allConnackProps())},
		&Connack{ReasonCode: connackCode},
		pub,
		&Publish{Topic: "x", Payload: []byte{}},
		&Publish{Dup: true, QoS: 2, Topic: "$SYS/x", PacketID: 1, Payload: []byte{0}},
		&Puback{PacketID: 1, ReasonCode: rc(PayloadFormatInvalid), Properties: pick(reason)},
		&Pubrec{PacketID: 2, ReasonCode: rc(NoMatchingSubscribers)},
		&Pubrel{PacketID: 3, Properties: pick(reason)},
		&Pubcomp{PacketID: 4, ReasonCode: rc(PacketIdentifierNotFound)},
		&Subscribe{PacketID: 5, Subscriptions: subs,
			Properties: pick(Properties{SubscriptionIdentifiers: []uint32{MaxVarint}, User: []UserProperty{{"s", "t"}}})},
		&Suback{PacketID: 5, ReasonCodes: []ReasonCode{0, 1, 2, 0x80}, Properties: pick(reason)},
		&Unsubscribe{PacketID: 6, Filters: []string{"a", "b/#"}, Properties: pick(Properties{User: []UserProperty{{"k", "v"}}})},
		&Unsuback{PacketID: 6, ReasonCodes: codes(Success, NoSubscriptionExisted, NotAuthorized), Properties: pick(reason)},
		&Pingreq{},
		&Pingresp{},
		&Disconnect{ReasonCode: rc(DisconnectWithWillMessage),
			Properties: pick(Properties{SessionExpiryInterval: new(uint32(1)), ServerReference: new("s"), ReasonString: new("r")})},
	}
}

func authSamples() []Packet {
	return []Packet{
		&Auth{},
		&Auth{ReasonCode: ReAuthenticate, Properties: Properties{AuthenticationMethod: new("m"),
			AuthenticationData: []byte{}, ReasonString: new(""), User: []UserProperty{{"a", "b"}}}},
	}
}

func TestRoundTrip(t *testing.T) {
	for _, v := range []byte{V31, V311, V5} {
		ps := samples(v)
		if v == V5 {
			ps = append(ps, authSamples()...)
		}
		for i, p := range ps {
			t.Run(fmt.Sprintf("v%d/%d-%s", v, i, p.Type()), func(t *testing.T) {
				roundTrip(t, p, v)
			})
		}
	}
}

func roundTrip(t *testing.T, p Packet, v byte) {
	t.Helper()
	wire, err := p.(interface {
		AppendTo([]byte, byte) ([]byte, error)
	}).AppendTo(nil, v)
	if err != nil {
		t.Fatalf("AppendTo: %v", err)
	}
	if n, err := Size(p, v); err != nil || n != len(wire) {
		t.Fatalf("Size = %d, %v; encoded %d bytes", n, err, len(wire))
	}
	readV := v
	if p.Type() == CONNECT {
		readV = 0
	}
	got, err := Decode(wire, readV)
	if err != nil {
		t.Fatalf("Decode(% X): %v", wire, err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("round trip:\n got %#v\nwant %#v", got, p)
	}
	var buf bytes.Buffer
	if err := Write(&buf, p, v); err != nil {
		t.Fatalf("Write: %v", err)
	}
	got, err = ReadPacket(bufio.NewReader(&buf), readV, uint32(len(wire)))
	if err != nil {
		t.Fatalf("ReadPacket: %v", err)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("ReadPacket:\n got %#v\nwant %#v", got, p)
	}
}

// TestEncodeDowngrade checks that 5.0-only fields are dropped, and 5.0
// codes translated, when encoding for earlier versions.
func TestEncodeDowngrade(t *testing.T) {
	tests := []struct {
		in   Packet
		want Packet
	}{
		{&Connack{ReasonCode: NotAuthorized, Properties: allConnackProps()}, &Connack{ReasonCode: RefusedNotAuthorized}},
		{&Connack{ReasonCode: UnsupportedProtocolVersion}, &Connack{ReasonCode: RefusedUnacceptableProtocolVersion}},
		{&Suback{PacketID: 1, ReasonCodes: []ReasonCode{QuotaExceeded, GrantedQoS2}}, &Suback{PacketID: 1, ReasonCodes: []ReasonCode{SubackFailure, GrantedQoS2}}},
		{&Unsuback{PacketID: 1, ReasonCodes: []ReasonCode{NotAuthorized}}, &Unsuback{PacketID: 1}},
		{&Puback{PacketID: 1, ReasonCode: QuotaExceeded}, &Puback{PacketID: 1}},
		{&Disconnect{ReasonCode: ServerShuttingDown}, &Disconnect{}},
		{&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 1, NoLocal: true, RetainHandling: 2}}},
			&Subscribe{PacketID: 1, Subscriptions: []Subscription{{Filter: "a", QoS: 1}}}},
	}
	for _, tt := range tests {
		t.Run(tt.in.Type().String(), func(t *testing.T) {
			wire, err := Append(nil, tt.in, V311)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(wire, V311)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestConnackV31SessionPresentDropped(t *testing.T) {
	wire, err := Append(nil, &Connack{SessionPresent: true}, V31)
	if err != nil {
		t.Fatal(err)
	}
	if want := []byte{0x20, 0x02, 0x00, 0x00}; !bytes.Equal(wire, want) {
		t.Fatalf("got % X, want % X", wire, want)
	}
}

func TestConnectVersionArgument(t *testing.T) {
	// ProtocolVersion 0 takes the version argument; non-zero wins.
	wire, err := Append(nil, &Connect{ClientID: "a", CleanStart: true}, V31)
	if err != nil {
		t.Fatal(err)
	}
	p, err := Decode(wire, 0)
	if err != nil || p.(*Connect).ProtocolVersion != V31 || p.(*Connect).ProtocolName != "MQIsdp" {
		t.Fatalf("got %#v, %v", p, err)
	}
	wire, err = Append(nil, &Connect{ProtocolVersion: V5}, V311)
	if err != nil {
		t.Fatal(err)
	}
	if p, err := Decode(wire, 0); err != nil || p.(*Connect).ProtocolVersion != V5 {
		t.Fatalf("got %#v, %v", p, err)
	}
}
