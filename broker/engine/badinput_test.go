package engine

import (
	"fmt"
	"net"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

// badCase is one hostile or broken input, written as raw bytes to a fresh
// loopback connection.
type badCase struct {
	name      string
	version   byte // the client's protocol version (how replies are decoded)
	connect   bool // send a valid CONNECT first
	keepAlive uint16
	send      []byte
	halfClose bool // close our write side after sending
	check     func(c *rawClient)
}

var bothVersions = []byte{packet.V311, packet.V5}

func vname(v byte) string {
	if v == packet.V5 {
		return "5.0"
	}
	return "3.1.1"
}

// silent: the server closes without a word.
func silent(c *rawClient) { c.expectSilentClose() }

func connackIs(rc packet.ReasonCode) func(*rawClient) {
	return func(c *rawClient) { c.expectConnack(rc) }
}

func kickedWith(rc packet.ReasonCode) func(*rawClient) {
	return func(c *rawClient) { c.expectKick(rc) }
}

// perVersion returns f(rc5) for 5.0 and a silent close for 3.1.1, where a
// protocol violation closes the connection [MQTT-4.8.0-1].
func connackOrClose(v byte, rc5 packet.ReasonCode) func(*rawClient) {
	if v == packet.V5 {
		return connackIs(rc5)
	}
	return silent
}

// beforeConnectCases are inputs sent as the first bytes of a connection.
func beforeConnectCases(t testing.TB) []badCase {
	valid := encode(t, &packet.Connect{ProtocolVersion: packet.V5, ClientID: "trunc", CleanStart: true}, packet.V5)
	cs := []badCase{
		// An end of stream inside the first packet: nothing to answer.
		{name: "truncated CONNECT then EOF", send: valid[:8], halfClose: true, check: silent},
		// A client that stalls inside CONNECT meets the connect timeout.
		{name: "truncated CONNECT stalled", send: valid[:8], check: silent},
		// Remaining Length above limits.maxPacketSize: refused from the
		// fixed header, before the body is read or allocated; the version
		// is unknown, so no CONNACK.
		{name: "oversize CONNECT", send: []byte{0x10, 0x80, 0x80, 0x40}, check: silent},
		// A Remaining Length of five bytes is malformed (section 1.5.5).
		{name: "remaining length of 5 bytes", send: []byte{0x10, 0xff, 0xff, 0xff, 0xff, 0x7f}, check: silent},
		// The first packet must be CONNECT [MQTT-3.1.0-1].
		{name: "PUBLISH before CONNECT", send: encode(t, &packet.Publish{Topic: "a", Payload: []byte("x")}, packet.V311), check: silent},
		{name: "SUBSCRIBE before CONNECT", send: encode(t, &packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: "a"}}}, packet.V311), check: silent},
		{name: "PINGREQ before CONNECT", send: []byte{0xc0, 0}, check: silent},
		{name: "AUTH before CONNECT", send: []byte{0xf0, 0}, check: silent},
		// CONNECT fixed header flags are reserved (0000) [MQTT-2.1.3-1].
		{name: "CONNECT with header flags", send: append([]byte{0x11}, valid[1:]...), check: silent},
		// 3.1.1: an unknown protocol name MAY be refused by closing
		// [MQTT-3.1.2-1]; we answer return code 1. 5.0: CONNACK 0x84
		// [MQTT-3.1.2-1].
		{name: "3.1.1 bad protocol name", version: packet.V311, send: connectBytes("MQTX", 4, 0x02, nil, mstr("id")), check: connackIs(packet.RefusedUnacceptableProtocolVersion)},
		{name: "5.0 bad protocol name", version: packet.V5, send: connectBytes("MQTX", 5, 0x02, props(), mstr("id")), check: connackIs(packet.UnsupportedProtocolVersion)},
		// An unsupported level gets 3.1.1 return code 1 (unacceptable
		// protocol level) [MQTT-3.1.2-2]: the 3.1.1 form is the one every
		// client version can read.
		{name: "protocol level 6", version: packet.V311, send: connectBytes("MQTT", 6, 0x02, nil, mstr("id")), check: connackIs(packet.RefusedUnacceptableProtocolVersion)},
		{name: "protocol level 2", version: packet.V311, send: connectBytes("MQTT", 2, 0x02, nil, mstr("id")), check: connackIs(packet.RefusedUnacceptableProtocolVersion)},
		// 3.1.1: a password without a user name is a protocol violation
		// [MQTT-3.1.2-22]: close, no CONNACK [MQTT-4.8.0-1].
		{name: "3.1.1 password without username", version: packet.V311, send: connectBytes("MQTT", 4, 0x42, nil, mstr("id"), mstr("pw")), check: silent},
		// 3.1.1: an empty client ID needs cleanSession=1: return code 2
		// [MQTT-3.1.3-8].
		{name: "3.1.1 empty client ID, cleanSession=0", version: packet.V311, send: connectBytes("MQTT", 4, 0x00, nil, mstr("")), check: connackIs(packet.RefusedIdentifierRejected)},
		// 5.0: an Authentication Method the server does not support gets
		// CONNACK 0x8C [MQTT-4.12.0-1].
		{name: "5.0 unsupported authentication method", version: packet.V5, send: connectBytes("MQTT", 5, 0x02, props(append([]byte{0x15}, mstr("SCRAM-SHA-1")...)...), mstr("id")), check: connackIs(packet.BadAuthenticationMethod)},
		// 5.0: Receive Maximum 0 is a Protocol Error (section 3.1.2.11.3).
		{name: "5.0 receive maximum 0", version: packet.V5, send: connectBytes("MQTT", 5, 0x02, props(0x21, 0, 0), mstr("id")), check: connackIs(packet.ProtocolError)},
		// 5.0: a password without a user name is allowed (section 3.1.2.9).
		{name: "5.0 password without username", version: packet.V5, send: connectBytes("MQTT", 5, 0x42, props(), mstr("pwonly"), mstr("pw")), check: connackIs(packet.Success)},
	}
	long := strings.Repeat("a", 300) // above limits.maxClientIDLength (256)
	for _, v := range bothVersions {
		p := props()
		if v != packet.V5 {
			p = nil
		}
		ver := func(name string) string { return vname(v) + " " + name }
		rcID := packet.ClientIdentifierNotValid
		if v != packet.V5 {
			rcID = packet.RefusedIdentifierRejected
		}
		cs = append(cs,
			// A client ID over the limit: 5.0 CONNACK 0x85
			// [MQTT-3.1.3-8], 3.1.1 return code 2 [MQTT-3.1.3-9].
			badCase{name: ver("client ID too long"), version: v, send: connectBytes("MQTT", v, 0x02, p, mstr(long)), check: connackIs(rcID)},
			// The reserved Connect Flag must be 0 [MQTT-3.1.2-3].
			badCase{name: ver("CONNECT reserved flag"), version: v, send: connectBytes("MQTT", v, 0x03, p, mstr("id")), check: connackOrClose(v, packet.MalformedPacket)},
			// Strings must be valid UTF-8 without U+0000 [MQTT-1.5.4-1]
			// [MQTT-1.5.4-2] (3.1.1: [MQTT-1.5.3-1] [MQTT-1.5.3-2]).
			badCase{name: ver("invalid UTF-8 client ID"), version: v, send: connectBytes("MQTT", v, 0x02, p, mstr("a\xffb")), check: connackOrClose(v, packet.MalformedPacket)},
			badCase{name: ver("U+0000 in client ID"), version: v, send: connectBytes("MQTT", v, 0x02, p, mstr("a\x00b")), check: connackOrClose(v, packet.MalformedPacket)},
			badCase{name: ver("invalid UTF-8 username"), version: v, send: connectBytes("MQTT", v, 0x82, p, mstr("id"), mstr("\xc3\x28")), check: connackOrClose(v, packet.MalformedPacket)},
			badCase{name: ver("U+0000 in username"), version: v, send: connectBytes("MQTT", v, 0x82, p, mstr("id"), mstr("u\x00")), check: connackOrClose(v, packet.MalformedPacket)},
			badCase{name: ver("surrogate in will topic"), version: v, send: connectBytes("MQTT", v, 0x06, p, mstr("id"), noProps(v), mstr("w/\xed\xa0\x80"), mstr("x")), check: connackOrClose(v, packet.MalformedPacket)},
			// A will topic is a topic name: no wildcards [MQTT-3.3.2-2]
			// (5.0 CONNACK 0x90 Topic Name invalid).
			badCase{name: ver("wildcard in will topic"), version: v, send: connectBytes("MQTT", v, 0x06, p, mstr("id"), noProps(v), mstr("w/#"), mstr("x")), check: connackOrClose(v, packet.TopicNameInvalid)},
			// Will QoS 3 is malformed [MQTT-3.1.2-12] (3.1.1:
			// [MQTT-3.1.2-14]).
			badCase{name: ver("will QoS 3"), version: v, send: connectBytes("MQTT", v, 0x1e, p, mstr("id"), noProps(v), mstr("w"), mstr("x")), check: connackOrClose(v, packet.MalformedPacket)},
			// Will QoS without the Will Flag [MQTT-3.1.2-11] (3.1.1:
			// [MQTT-3.1.2-13]).
			badCase{name: ver("will QoS without will flag"), version: v, send: connectBytes("MQTT", v, 0x0a, p, mstr("id")), check: connackOrClose(v, packet.MalformedPacket)},
		)
	}
	cs = append(cs,
		badCase{name: "5.0 invalid UTF-8 user property", version: packet.V5, send: connectBytes("MQTT", 5, 0x02, props(append(append([]byte{0x26}, mstr("k")...), mstr("v\xff")...)...), mstr("id")), check: connackIs(packet.MalformedPacket)},
	)
	return cs
}

func qos3Code(v byte) packet.ReasonCode {
	if v == packet.V5 {
		return packet.ProtocolError
	}
	return packet.MalformedPacket
}

// noProps is an empty property block in 5.0 and nothing in 3.1.1.
func noProps(v byte) []byte {
	if v == packet.V5 {
		return props()
	}
	return nil
}

// afterConnectCases are inputs sent after a successful CONNECT.
func afterConnectCases(t testing.TB) []badCase {
	var cs []badCase
	for _, v := range bothVersions {
		ver := func(name string) string { return vname(v) + " " + name }
		add := func(name string, send []byte, check func(*rawClient)) {
			cs = append(cs, badCase{name: ver(name), version: v, connect: true, send: send, check: check})
		}
		pub := encode(t, &packet.Publish{QoS: 1, PacketID: 5, Topic: "t/x", Payload: []byte("payload")}, v)
		cs = append(cs,
			badCase{name: ver("truncated PUBLISH then EOF"), version: v, connect: true, send: pub[:6], halfClose: true, check: silent},
			// A client stalling mid-packet meets the keep alive (1.5 x
			// 1 s): 5.0 DISCONNECT 0x8D (section 3.1.2.10).
			badCase{name: ver("truncated PUBLISH stalled"), version: v, connect: true, keepAlive: 1, send: pub[:6], check: kickedWith(packet.KeepAliveTimeout)},
		)
		// Remaining Length 1 MiB > limits.maxPacketSize (4 KiB): refused
		// from the fixed header; 5.0 DISCONNECT 0x95 (section 3.2.2.3.6).
		add("oversize PUBLISH", []byte{0x32, 0x80, 0x80, 0x40}, kickedWith(packet.PacketTooLarge))
		add("remaining length of 5 bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f}, kickedWith(packet.MalformedPacket))
		// Topic names: valid UTF-8, no U+0000 [MQTT-1.5.4-1]
		// [MQTT-1.5.4-2], no wildcards [MQTT-3.3.2-2] (5.0: 0x90).
		add("invalid UTF-8 topic", frame(0x30, mstr("t/\xff"), noProps(v), []byte("x")), kickedWith(packet.MalformedPacket))
		add("U+0000 in topic", frame(0x30, mstr("t/\x00"), noProps(v), []byte("x")), kickedWith(packet.MalformedPacket))
		add("'+' in published topic", frame(0x30, mstr("t/+"), noProps(v), []byte("x")), kickedWith(packet.TopicNameInvalid))
		add("'#' in published topic", frame(0x32, mstr("t/#"), []byte{0, 1}, noProps(v), []byte("x")), kickedWith(packet.TopicNameInvalid))
		// A second CONNECT is a Protocol Error [MQTT-3.1.0-2].
		add("second CONNECT", encode(t, &packet.Connect{ProtocolVersion: v, ClientID: "again", CleanStart: true}, v), kickedWith(packet.ProtocolError))
		add("second CONNECT, bad protocol level", connectBytes("MQTT", 9, 0x02, nil, mstr("again")), kickedWith(packet.ProtocolError))
		add("second CONNECT, client ID too long", connectBytes("MQTT", v, 0x02, noProps(v), mstr(strings.Repeat("x", 300))), kickedWith(packet.ProtocolError))
		// QoS 3 is malformed [MQTT-3.3.1-4].
		add("PUBLISH QoS 3", frame(0x36, mstr("t"), []byte{0, 1}, noProps(v), []byte("x")), kickedWith(packet.MalformedPacket))
		// Packet identifier 0 on QoS > 0 [MQTT-2.2.1-3].
		add("QoS 1 packet ID 0", frame(0x32, mstr("t"), []byte{0, 0}, noProps(v), []byte("x")), kickedWith(packet.ProtocolError))
		add("QoS 2 packet ID 0", frame(0x34, mstr("t"), []byte{0, 0}, noProps(v), []byte("x")), kickedWith(packet.ProtocolError))
		// Reserved fixed header flags [MQTT-2.1.3-1]; PUBREL must carry
		// 0010 [MQTT-3.6.1-1].
		add("PUBREL with flags 0000", []byte{0x60, 2, 0, 1}, kickedWith(packet.MalformedPacket))
		add("PUBACK with flags 0010", []byte{0x42, 2, 0, 1}, kickedWith(packet.MalformedPacket))
		add("SUBSCRIBE with flags 0000", frame(0x80, []byte{0, 1}, noProps(v), mstr("a"), []byte{0}), kickedWith(packet.MalformedPacket))
		add("PINGREQ with flags 0001", []byte{0xc1, 0}, kickedWith(packet.MalformedPacket))
		// SUBSCRIBE without filters: 5.0 Protocol Error [MQTT-3.8.3-2],
		// 3.1.1 protocol violation [MQTT-3.8.3-3].
		add("SUBSCRIBE without filters", frame(0x82, []byte{0, 1}, noProps(v)), kickedWith(packet.ProtocolError))
		add("UNSUBSCRIBE without filters", frame(0xa2, []byte{0, 1}, noProps(v)), kickedWith(packet.ProtocolError))
		add("invalid UTF-8 topic filter", frame(0x82, []byte{0, 1}, noProps(v), mstr("a/\xff"), []byte{0}), kickedWith(packet.MalformedPacket))
		// Maximum QoS 3: 3.1.1 malformed [MQTT-3-8.3-4], 5.0 Protocol
		// Error (section 3.8.3.1).
		add("SUBSCRIBE QoS 3", frame(0x82, []byte{0, 1}, noProps(v), mstr("a"), []byte{3}), kickedWith(qos3Code(v)))
		// Packets only a server sends are protocol errors from a client.
		add("CONNACK from client", encode(t, &packet.Connack{}, v), kickedWith(packet.ProtocolError))
		add("PINGRESP from client", []byte{0xd0, 0}, kickedWith(packet.ProtocolError))
		// Packet type 0 is reserved (section 2.1.2): malformed.
		add("packet type 0", []byte{0x00, 0}, kickedWith(packet.MalformedPacket))
		cs = append(cs, invalidFilters(v))
	}
	// 3.1.1 has no type 15: a reserved type closes the connection.
	cs = append(cs, badCase{name: "3.1.1 packet type 15", version: packet.V311, connect: true, send: []byte{0xf0, 0}, check: silent})
	return append(cs, v5OnlyCases()...)
}

// invalidFilters: a SUBSCRIBE whose filters are invalid gets failure codes
// in the SUBACK (5.0: 0x8F Topic Filter invalid, 3.1.1: 0x80) and the
// connection stays usable [MQTT-3.9.3-1].
func invalidFilters(v byte) badCase {
	filters := []string{"a/#/b", "a+", "a/b#", "", "$share/g", "$share//x", "ok/+"}
	var body [][]byte
	body = append(body, []byte{0, 7}, noProps(v))
	for _, f := range filters {
		body = append(body, mstr(f), []byte{1})
	}
	fail := packet.TopicFilterInvalid
	if v != packet.V5 {
		fail = packet.SubackFailure
	}
	want := []packet.ReasonCode{fail, fail, fail, fail, fail, fail, packet.GrantedQoS1}
	return badCase{name: vname(v) + " invalid topic filters", version: v, connect: true, send: frame(0x82, body...),
		check: func(c *rawClient) {
			ack, ok := c.recv().(*packet.Suback)
			if !ok || ack.PacketID != 7 || !slices.Equal(ack.ReasonCodes, want) {
				c.t.Fatalf("SUBACK %+v, want codes %v", ack, want)
			}
			c.send(&packet.Pingreq{})
			if _, ok := c.recv().(*packet.Pingresp); !ok {
				c.t.Fatal("connection not usable after SUBACK with failures")
			}
		}}
}

func v5OnlyCases() []badCase {
	v := packet.V5
	add := func(name string, send []byte, check func(*rawClient)) badCase {
		return badCase{name: "5.0 " + name, version: v, connect: true, send: send, check: check}
	}
	alias := func(a uint16) []byte { return props(0x23, byte(a>>8), byte(a)) }
	return []badCase{
		// Topic Alias 0 [MQTT-3.3.2-8] or above our Topic Alias Maximum
		// (32) [MQTT-3.3.2-9]: DISCONNECT 0x94.
		add("topic alias 0", frame(0x30, mstr("t"), alias(0), []byte("x")), kickedWith(packet.TopicAliasInvalid)),
		add("topic alias above maximum", frame(0x30, mstr("t"), alias(33), []byte("x")), kickedWith(packet.TopicAliasInvalid)),
		// An empty topic with an alias that was never set: Protocol Error
		// (section 3.3.2.3.4).
		add("unknown topic alias", frame(0x30, mstr(""), alias(3), []byte("x")), kickedWith(packet.ProtocolError)),
		// A client must not send Subscription Identifiers [MQTT-3.3.4-6].
		add("subscription identifier in PUBLISH", frame(0x30, mstr("t"), props(0x0b, 1), []byte("x")), kickedWith(packet.ProtocolError)),
		add("invalid UTF-8 user property", frame(0x30, mstr("t"), props(append(append([]byte{0x26}, mstr("k")...), mstr("\xff")...)...), []byte("x")), kickedWith(packet.MalformedPacket)),
		// AUTH without an Authentication Method in CONNECT: Protocol
		// Error (section 4.12).
		add("AUTH without authentication method", []byte{0xf0, 0}, kickedWith(packet.ProtocolError)),
		// A session expiry set on DISCONNECT after CONNECT asked for 0
		// [MQTT-3.14.2-2].
		add("DISCONNECT sets expiry after 0", frame(0xe0, []byte{0}, props(0x11, 0, 0, 0, 10)), kickedWith(packet.ProtocolError)),
		add("PUBLISH DUP on QoS 0", frame(0x38, mstr("t"), props(), []byte("x")), kickedWith(packet.ProtocolError)),
	}
}

// TestBadInput writes each hostile input to a fresh connection and checks
// the answer the specification demands, the close, and that every
// goroutine the connection started has ended.
func TestBadInput(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.ConnectTimeout = config.Duration(300 * time.Millisecond)
	cfg.Limits.MaxPacketSize = 4096
	b := startBroker(t, cfg)
	cases := append(beforeConnectCases(t), afterConnectCases(t)...)
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			base := settledGoroutines()
			runBadCase(t, b, i, tc)
			waitGoroutines(t, base, 5*time.Second)
		})
	}
	eventually(t, 5*time.Second, "connections to end", func() bool { return b.srv.Stats().Connections == 0 })
	// The broker still serves well-behaved clients.
	c := dialRaw(t, b.addr, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: "after", CleanStart: true}); ack.ReasonCode != packet.Success {
		t.Fatalf("CONNACK %v after the bad inputs", ack.ReasonCode)
	}
}

func runBadCase(t *testing.T, b *testBroker, i int, tc badCase) {
	v := tc.version
	if v == 0 {
		v = packet.V5
	}
	c := dialRaw(t, b.addr, v)
	defer c.nc.Close()
	if tc.connect {
		ack := c.connect(&packet.Connect{ClientID: fmt.Sprintf("bad-%d", i), CleanStart: true, KeepAlive: tc.keepAlive})
		if ack.ReasonCode != packet.Success {
			t.Fatalf("CONNACK %v", ack.ReasonCode)
		}
	}
	c.write(tc.send)
	if tc.halfClose {
		if err := c.nc.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
	}
	tc.check(c)
}

// TestOversizeRefusedBeforeAllocation declares the largest Remaining
// Length (256 MiB) after CONNECT: the server refuses it from the fixed
// header (5.0 DISCONNECT 0x95) without allocating the body.
func TestOversizeRefusedBeforeAllocation(t *testing.T) {
	b := startBroker(t, nil)
	base := settledGoroutines()
	for _, v := range bothVersions {
		c := dialRaw(t, b.addr, v)
		c.connect(&packet.Connect{ClientID: "big", CleanStart: true})
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		c.write([]byte{0x30, 0xff, 0xff, 0xff, 0x7f})
		c.expectKick(packet.PacketTooLarge)
		runtime.ReadMemStats(&after)
		if d := after.TotalAlloc - before.TotalAlloc; d > 32<<20 {
			t.Fatalf("%s: %d bytes allocated for a refused packet", vname(v), d)
		}
		waitGoroutines(t, base, 5*time.Second)
	}
}

// TestReceiveMaximumExceeded: a 5.0 client with more unacknowledged QoS
// 1/2 PUBLISHes than our Receive Maximum is disconnected with 0x93
// (section 3.3.4).
func TestReceiveMaximumExceeded(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxInflight = 2
	st := newGatedStore(memstore.New())
	b := startBroker(t, cfg, withStore(st))
	t.Cleanup(st.release) // before the broker drains
	base := settledGoroutines()
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "greedy", Properties: packet.Properties{SessionExpiryInterval: u32(60)}})
	st.hold() // acknowledgements of the inbound QoS 2 state wait
	for id := uint16(1); id <= 3; id++ {
		c.send(&packet.Publish{QoS: 2, PacketID: id, Topic: "t", Payload: []byte("x")})
	}
	c.expectKick(packet.ReceiveMaximumExceeded)
	st.release()
	waitGoroutines(t, base, 5*time.Second)
}
