package engine

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
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
		var p packet.Publish
		c.publishPacket(&p, &session.Outgoing{Msg: m, QoS: 1, PacketID: 1}, now)
		wire, err := packet.Size(&p, packet.V5)
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

// TestTopicLimits attacks limits.maxTopicLevels and maxTopicLength through
// every way a topic enters: PUBLISH (retained or not, aliased), will topic
// and SUBSCRIBE, in 5.0 and 3.1.1.
func TestTopicLimits(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxTopicLevels = 4
	cfg.Limits.MaxTopicLength = 64
	b := startBroker(t, cfg)
	deep := "a/b/c/d/e"
	long := strings.Repeat("x", 65)
	refused := func() uint64 { return b.srv.Stats().Refusals[LimitTopic] }

	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "t5", CleanStart: true})
	for i, tp := range []string{deep, long} {
		c.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Retain: true, Topic: tp, Payload: []byte("r")})
		if ack, ok := c.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.TopicNameInvalid {
			t.Fatalf("PUBLISH to %q: %+v, want PUBACK 0x90", tp, ack)
		}
	}
	// An alias cannot smuggle a long topic in: it is refused when set.
	c.send(&packet.Publish{QoS: 1, PacketID: 3, Topic: long, Properties: packet.Properties{TopicAlias: u16(1)}})
	if ack, ok := c.recv().(*packet.Puback); !ok || ack.ReasonCode != packet.TopicNameInvalid {
		t.Fatalf("aliased PUBLISH: %+v, want PUBACK 0x90", ack)
	}
	sa := c.subscribe(4, 0, packet.Subscription{Filter: "a/+/c/d/#", QoS: 1}, packet.Subscription{Filter: "$share/g/a/b/c/d", QoS: 1},
		packet.Subscription{Filter: "a/b/c/#", QoS: 1})
	if want := []packet.ReasonCode{packet.TopicFilterInvalid, packet.Success + 1, packet.Success + 1}; !slices.Equal(sa.ReasonCodes, want) {
		t.Fatalf("SUBACK %v, want %v", sa.ReasonCodes, want)
	}
	if n := b.srv.Stats().Retained; n != 0 {
		t.Fatalf("%d retained messages, want 0", n)
	}
	if n := refused(); n != 4 {
		t.Fatalf("refusals = %d, want 4", n)
	}
	// QoS 0 cannot be acknowledged: DISCONNECT 0x90.
	c.send(&packet.Publish{Topic: deep})
	if d := c.expectClosed(); d == nil || d.ReasonCode != packet.TopicNameInvalid {
		t.Fatalf("DISCONNECT %+v, want 0x90", d)
	}

	// 3.1.1: SUBACK 0x80, and a PUBLISH closes the connection.
	c = dialRaw(t, b.addr, packet.V311)
	c.connect(&packet.Connect{ClientID: "t3", CleanStart: true})
	if sa := c.subscribe(1, 0, packet.Subscription{Filter: deep, QoS: 1}); sa.ReasonCodes[0] != packet.SubackFailure {
		t.Fatalf("3.1.1 SUBACK %v, want 0x80", sa.ReasonCodes)
	}
	c.send(&packet.Publish{QoS: 1, PacketID: 1, Topic: long})
	c.expectClosed()

	// A will topic beyond the limits refuses the CONNECT.
	c = dialRaw(t, b.addr, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: "w", WillFlag: true, WillTopic: deep}); ack.ReasonCode != packet.TopicNameInvalid {
		t.Fatalf("CONNACK %v, want 0x90", ack.ReasonCode)
	}
	if n := refused(); n != 8 {
		t.Fatalf("refusals = %d, want 8", n)
	}
}

// TestSessionCaps floods sessions with one username, anonymously and in
// all: beyond the per-principal and global caps CONNECT is refused (5.0
// 0x97, 3.1.1 0x03) and counted, resuming an existing session still works,
// and an expired or deleted session frees its place.
func TestSessionCaps(t *testing.T) {
	cfg := testConfig()
	cfg.Sessions.MaxSessionsPerPrincipal = 3
	cfg.Sessions.MaxSessions = 5
	b := startBrokerWith(t, cfg, WithAuthenticator(userAuth{}, nil))
	connect := func(version byte, id, user string, clean bool) (*rawClient, *packet.Connack) {
		c := dialRaw(t, b.addr, version)
		p := &packet.Connect{ClientID: id, CleanStart: clean, Properties: packet.Properties{SessionExpiryInterval: u32(3600)}}
		if user != "" {
			p.UsernameFlag, p.Username, p.PasswordFlag, p.Password = true, user, true, []byte("pw")
		}
		return c, c.connect(p)
	}
	offline := func(version byte, id, user string) packet.ReasonCode {
		c, ack := connect(version, id, user, false)
		if ack.ReasonCode == packet.Success {
			c.send(&packet.Disconnect{})
			c.expectClosed()
			waitOffline(t, b, id)
		}
		return ack.ReasonCode
	}
	for i := range 3 {
		if rc := offline(packet.V5, "m"+strconv.Itoa(i), "mallory"); rc != packet.Success {
			t.Fatalf("session %d of mallory: %v", i, rc)
		}
	}
	if rc := offline(packet.V5, "m3", "mallory"); rc != packet.QuotaExceeded {
		t.Fatalf("4th session of mallory: %v, want 0x97", rc)
	}
	if rc := offline(packet.V311, "m4", "mallory"); rc != packet.RefusedServerUnavailable {
		t.Fatalf("3.1.1 session of mallory: %v, want 0x03", rc)
	}
	// Resuming one of the three is not a new session.
	if rc := offline(packet.V5, "m1", "mallory"); rc != packet.Success {
		t.Fatalf("resuming m1: %v", rc)
	}
	// Anonymous clients share one principal.
	for i := range 2 {
		if rc := offline(packet.V5, "anon"+strconv.Itoa(i), ""); rc != packet.Success {
			t.Fatalf("anonymous session %d: %v", i, rc)
		}
	}
	// Now 5 sessions in all: the global cap refuses another user too.
	if rc := offline(packet.V5, "alice1", "alice"); rc != packet.QuotaExceeded {
		t.Fatalf("6th session: %v, want 0x97", rc)
	}
	st := b.srv.Stats()
	if st.Refusals[LimitSessionsPerPrincipal] != 2 || st.Refusals[LimitSessions] != 1 {
		t.Fatalf("refusals %v", st.Refusals)
	}
	// A session ended with expiry 0 gives its place back.
	c, _ := connect(packet.V5, "m0", "mallory", false)
	c.send(&packet.Disconnect{Properties: packet.Properties{SessionExpiryInterval: u32(0)}})
	c.expectClosed()
	eventually(t, 5*time.Second, "m0 deleted", func() bool { _, ok := b.srv.Session("m0"); return !ok })
	if rc := offline(packet.V5, "alice1", "alice"); rc != packet.Success {
		t.Fatalf("after m0 ended: %v", rc)
	}
	// A clean start replaces the session in place, also at the cap.
	if _, ack := connect(packet.V5, "alice1", "alice", true); ack.ReasonCode != packet.Success {
		t.Fatalf("clean start at the cap: %v", ack.ReasonCode)
	}
	if n := len(b.srv.Sessions()); n != 5 {
		t.Fatalf("%d sessions, want 5", n)
	}
}

// TestRetainedLimits floods retained topics: beyond the count cap a 5.0
// QoS 1 publish on a new topic gets 0x97 and is not delivered, replacing
// and clearing still work, a 3.1.1 publish is delivered but not retained;
// retained bytes count against the store budget.
func TestRetainedLimits(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxRetainedMessages = 3
	b := startBroker(t, cfg)
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true})
	sub.subscribe(1, 0, packet.Subscription{Filter: "r/#", QoS: 1})
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	retained := func(id uint16, topic, payload string) packet.ReasonCode {
		pub.send(&packet.Publish{QoS: 1, PacketID: id, Retain: true, Topic: topic, Payload: []byte(payload)})
		ack, ok := pub.recv().(*packet.Puback)
		if !ok {
			t.Fatal("expected PUBACK")
		}
		return ack.ReasonCode
	}
	delivered := func(want string) {
		t.Helper()
		p := sub.recvPublish()
		sub.send(&packet.Puback{PacketID: p.PacketID})
		if string(p.Payload) != want {
			t.Fatalf("delivered %q, want %q", p.Payload, want)
		}
	}
	for i, tp := range []string{"r/1", "r/2", "r/3"} {
		if rc := retained(uint16(i+1), tp, "v"); rc != packet.Success {
			t.Fatalf("retain %s: %v", tp, rc)
		}
		delivered("v")
	}
	if rc := retained(4, "r/4", "refused"); rc != packet.QuotaExceeded {
		t.Fatalf("4th retained topic: %v, want 0x97", rc)
	}
	sub.expectNothing(100 * time.Millisecond)
	if rc := retained(5, "r/1", "replaced"); rc != packet.Success {
		t.Fatalf("replacing r/1: %v", rc)
	}
	delivered("replaced")
	if rc := retained(6, "r/2", ""); rc != packet.Success {
		t.Fatalf("clearing r/2: %v", rc)
	}
	delivered("")
	if rc := retained(7, "r/4", "now fits"); rc != packet.Success {
		t.Fatalf("r/4 after clearing r/2: %v", rc)
	}
	delivered("now fits")
	// 3.1.1 cannot be told: delivered, not retained.
	old := dialRaw(t, b.addr, packet.V311)
	old.connect(&packet.Connect{ClientID: "old", CleanStart: true})
	old.send(&packet.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: "r/5", Payload: []byte("not retained")})
	if _, ok := old.recv().(*packet.Puback); !ok {
		t.Fatal("expected PUBACK")
	}
	delivered("not retained")
	if n := len(b.srv.router.Retained("r/#")); n != 3 {
		t.Fatalf("%d retained messages, want 3", n)
	}
	if n := b.srv.Stats().Refusals[LimitRetained]; n != 2 {
		t.Fatalf("refusals = %d, want 2", n)
	}

	// Retained messages fill the store budget too.
	cfg = testConfig()
	one := (&store.Message{Topic: "s/1", Payload: make([]byte, 100), Publisher: "p2", Retain: true}).Size()
	cfg.Queues.MaxStoreBytes = 2*one + one/2
	b = startBroker(t, cfg)
	pub = dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "p2", CleanStart: true})
	for i, want := range []packet.ReasonCode{packet.Success, packet.Success, packet.QuotaExceeded} {
		if rc := retained(uint16(i+1), "s/"+strconv.Itoa(i+1), string(make([]byte, 100))); rc != want {
			t.Fatalf("retained %d: %v, want %v", i+1, rc, want)
		}
	}
}

// TestInboundQoS2Slots: a client cannot open more QoS 2 exchanges than
// limits.maxInflight without releasing them; a resent PUBLISH opens none,
// and a PUBREL frees a place.
func TestInboundQoS2Slots(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxInflight = 3
	b := startBroker(t, cfg)
	for _, version := range []byte{packet.V5, packet.V311} {
		c := dialRaw(t, b.addr, version)
		c.connect(&packet.Connect{ClientID: "q2-" + strconv.Itoa(int(version)), CleanStart: true})
		pub := func(pid uint16, dup bool) {
			t.Helper()
			c.send(&packet.Publish{QoS: 2, PacketID: pid, Dup: dup, Topic: "q2", Payload: []byte("x")})
			if rec, ok := c.recv().(*packet.Pubrec); !ok || rec.PacketID != pid {
				t.Fatalf("PUBLISH %d: %+v, want PUBREC", pid, rec)
			}
		}
		for pid := range uint16(3) {
			pub(pid+1, false)
		}
		pub(2, true) // resent: no new exchange
		c.send(&packet.Pubrel{PacketID: 1})
		if comp, ok := c.recv().(*packet.Pubcomp); !ok || comp.PacketID != 1 {
			t.Fatalf("PUBREL: %+v", comp)
		}
		pub(4, false) // the place of 1
		c.send(&packet.Publish{QoS: 2, PacketID: 5, Topic: "q2", Payload: []byte("x")})
		d := c.expectClosed()
		if version == packet.V5 && (d == nil || d.ReasonCode != packet.ReceiveMaximumExceeded) {
			t.Fatalf("DISCONNECT %+v, want 0x93", d)
		}
	}
	if n := b.srv.Stats().Refusals[LimitInboundQoS2]; n != 2 {
		t.Fatalf("refusals = %d, want 2", n)
	}
}

// TestKeepAliveCapFor311: a 3.1.1 client that asked for no keep alive is
// closed after 1.5 times limits.maxKeepAlive of silence; a 5.0 client is
// told the cap.
func TestKeepAliveCapFor311(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxKeepAlive = config.Duration(time.Second)
	b := startBroker(t, cfg)
	c5 := dialRaw(t, b.addr, packet.V5)
	if ack := c5.connect(&packet.Connect{ClientID: "ka5", CleanStart: true}); ack.Properties.ServerKeepAlive == nil || *ack.Properties.ServerKeepAlive != 1 {
		t.Fatalf("Server Keep Alive %v, want 1", ack.Properties.ServerKeepAlive)
	}
	c := dialRaw(t, b.addr, packet.V311)
	c.connect(&packet.Connect{ClientID: "ka3", CleanStart: true, KeepAlive: 0})
	start := time.Now()
	c.expectClosed()
	if el := time.Since(start); el < 1400*time.Millisecond || el > 4*time.Second {
		t.Fatalf("closed after %v, want ~1.5s", el)
	}
	eventually(t, 5*time.Second, "keep_alive refusals counted", func() bool {
		return b.srv.Stats().Refusals[LimitKeepAlive] >= 1
	})
}

// TestRetainedPublishAfterSubackDeliveredOnce: a retained message published
// once the subscriber has its SUBACK reaches it once, live. The retained
// messages of a new subscription were read after the SUBACK was queued, so
// such a publish could also come back as a retained copy (seen as a flaky
// TestRetainedLimits).
func TestRetainedPublishAfterSubackDeliveredOnce(t *testing.T) {
	b := startBroker(t, testConfig())
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	for i := range 200 {
		sub := dialRaw(t, b.addr, packet.V5)
		sub.connect(&packet.Connect{ClientID: "sub", CleanStart: true})
		topic := fmt.Sprintf("once/%d", i)
		sub.subscribe(1, 0, packet.Subscription{Filter: topic, QoS: 1})
		pub.send(&packet.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: topic, Payload: []byte("x")})
		if _, ok := pub.recv().(*packet.Puback); !ok {
			t.Fatal("expected PUBACK")
		}
		p := sub.recvPublish()
		sub.send(&packet.Puback{PacketID: p.PacketID})
		if p, err := sub.tryRecv(20 * time.Millisecond); err == nil {
			t.Fatalf("round %d: delivered twice, the second time %+v", i, p)
		}
		sub.send(&packet.Disconnect{})
		sub.expectClosed()
	}
}
