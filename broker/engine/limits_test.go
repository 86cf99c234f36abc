package engine

import (
	"strconv"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store"
)

// offlineSubscriber creates a persistent session subscribed to filter and
// disconnects it.
func offlineSubscriber(t *testing.T, b *testBroker, id, filter string, qos byte) {
	t.Helper()
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: id, CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
	c.subscribe(1, 0, packet.Subscription{Filter: filter, QoS: qos})
	c.send(&packet.Disconnect{})
	c.expectClosed()
	waitOffline(t, b, id)
}

// waitOffline waits until the broker has recorded the disconnection of id
// (the socket closes slightly before).
func waitOffline(t *testing.T, b *testBroker, id string) {
	t.Helper()
	// Offline and its disconnection time recorded: detach marks the
	// session offline a moment before it stamps DisconnectedAt, and a test
	// that then moves a fake clock must move it after the stamp.
	eventually(t, 5*time.Second, id+" offline", func() bool {
		i, ok := b.srv.Session(id)
		return ok && !i.Online && !i.ExpiresAt.IsZero()
	})
}

// publishQoS1 publishes payloads and returns the PUBACK reason codes.
func publishQoS1(t *testing.T, c *rawClient, topic string, payloads ...string) []packet.ReasonCode {
	t.Helper()
	var codes []packet.ReasonCode
	for i, p := range payloads {
		c.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: topic, Payload: []byte(p)})
		ack, ok := c.recv().(*packet.Puback)
		if !ok {
			t.Fatal("expected PUBACK")
		}
		codes = append(codes, ack.ReasonCode)
	}
	return codes
}

// drain reconnects id and returns the payloads of the queued messages.
func drainSession(t *testing.T, b *testBroker, id string, n int) []string {
	t.Helper()
	c := dialRaw(t, b.addr, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: id, Properties: packet.Properties{SessionExpiryInterval: u32(3600)}}); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	var out []string
	for range n {
		p := c.recvPublish()
		out = append(out, string(p.Payload))
		c.send(&packet.Puback{PacketID: p.PacketID})
	}
	c.expectNothing(100 * time.Millisecond)
	return out
}

func TestQueueOverflowPolicies(t *testing.T) {
	cases := map[string]struct {
		policy string
		want   []string
		codes  []packet.ReasonCode
		reason string
	}{
		config.OverflowDropOldest: {want: []string{"2", "3", "4"}, reason: DropQueueFull,
			codes: []packet.ReasonCode{0, 0, 0, 0, 0}},
		config.OverflowDropNewest: {want: []string{"0", "1", "2"}, reason: DropQueueFull,
			codes: []packet.ReasonCode{0, 0, 0, 0, 0}},
		config.OverflowRejectPublish: {want: []string{"0", "1", "2"}, reason: DropQuotaRejected,
			codes: []packet.ReasonCode{0, 0, 0, packet.QuotaExceeded, packet.QuotaExceeded}},
	}
	for policy, tc := range cases {
		t.Run(policy, func(t *testing.T) {
			cfg := testConfig()
			cfg.Queues.MaxQueuedMessages = 3
			cfg.Queues.OverflowPolicy = policy
			b := startBroker(t, cfg)
			offlineSubscriber(t, b, "of", "of", 1)
			pub := dialRaw(t, b.addr, packet.V5)
			pub.connect(&packet.Connect{ClientID: "ofpub", CleanStart: true})
			codes := publishQoS1(t, pub, "of", "0", "1", "2", "3", "4")
			for i := range codes {
				if codes[i] != tc.codes[i] {
					t.Fatalf("PUBACK codes %v, want %v", codes, tc.codes)
				}
			}
			got := drainSession(t, b, "of", 3)
			for i := range got {
				if got[i] != tc.want[i] {
					t.Fatalf("delivered %v, want %v", got, tc.want)
				}
			}
			if d := b.srv.Stats().Drops[tc.reason]; d != 2 {
				t.Fatalf("drops %v", b.srv.Stats().Drops)
			}
		})
	}
}

func TestQueueByteLimitAndQoS0(t *testing.T) {
	cfg := testConfig()
	// Room for one message of 4 bytes, not two (Size counts the encoded
	// PUBLISH, the publisher and store.EntryOverhead).
	one := (&store.Message{Topic: "qb", Payload: []byte("1234"), Publisher: "qbpub"}).Size()
	cfg.Queues.MaxQueuedBytes = 2*one - 1
	cfg.Queues.OverflowPolicy = config.OverflowDropNewest
	b := startBroker(t, cfg)
	offlineSubscriber(t, b, "qb", "qb", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "qbpub", CleanStart: true})
	pub.send(&packet.Publish{Topic: "qb", Payload: []byte("qos0")}) // QoS 0: not queued offline
	publishQoS1(t, pub, "qb", "1234", "5678", "56789")
	got := drainSession(t, b, "qb", 1)
	if got[0] != "1234" {
		t.Fatalf("got %v", got)
	}
	d := b.srv.Stats().Drops
	if d[DropQueueFull] != 2 || d[DropQoS0Offline] != 1 {
		t.Fatalf("drops %v", d)
	}
}

func TestStoreBudget(t *testing.T) {
	cfg := testConfig()
	one := (&store.Message{Topic: "sb", Payload: []byte("0123456789"), Publisher: "sbpub"}).Size()
	cfg.Queues.MaxStoreBytes = 2*one - 1
	cfg.Queues.OverflowPolicy = config.OverflowRejectPublish
	b := startBroker(t, cfg)
	offlineSubscriber(t, b, "sb", "sb", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "sbpub", CleanStart: true})
	codes := publishQoS1(t, pub, "sb", "0123456789", "0123456789")
	if codes[0] != packet.Success || codes[1] != packet.QuotaExceeded {
		t.Fatalf("codes %v", codes)
	}
	if b.srv.Stats().Drops[DropStoreFull] != 1 {
		t.Fatalf("drops %v", b.srv.Stats().Drops)
	}
}

func TestSessionExpiry(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig()
	cfg.Sessions.MaxSessionExpiry = config.Duration(100 * time.Second)
	cfg.Sessions.DefaultSessionExpiry = config.Duration(100 * time.Second)
	b := startBroker(t, cfg, withClock(clock))
	c := dialRaw(t, b.addr, packet.V5)
	ack := c.connect(&packet.Connect{ClientID: "exp", CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: u32(1000)}})
	if e := ack.Properties.SessionExpiryInterval; e == nil || *e != 100 {
		t.Fatalf("granted expiry %v, want 100 (capped)", e)
	}
	c.subscribe(1, 0, packet.Subscription{Filter: "exp", QoS: 1})
	c.send(&packet.Disconnect{})
	c.expectClosed()
	waitOffline(t, b, "exp")
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "exppub", CleanStart: true})
	publishQoS1(t, pub, "exp", "a")

	clock.Advance(99 * time.Second)
	b.srv.sweep.runDue()
	if _, ok := b.srv.Session("exp"); !ok {
		t.Fatal("session expired early")
	}
	clock.Advance(2 * time.Second)
	eventually(t, 5*time.Second, "session expiry", func() bool { _, ok := b.srv.Session("exp"); return !ok })
	if b.srv.Stats().Drops[DropSessionExpired] != 1 {
		t.Fatalf("drops %v", b.srv.Stats().Drops)
	}
	c = dialRaw(t, b.addr, packet.V5)
	if ack := c.connect(&packet.Connect{ClientID: "exp", Properties: packet.Properties{SessionExpiryInterval: u32(10)}}); ack.SessionPresent {
		t.Fatal("expired session still present")
	}
}

func TestMessageExpiry(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, nil, withClock(clock))
	offlineSubscriber(t, b, "mexp", "mexp", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "mexppub", CleanStart: true})
	for i, e := range []uint32{5, 100} {
		pub.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "mexp", Payload: []byte(strconv.Itoa(int(e))),
			Properties: packet.Properties{MessageExpiryInterval: u32(e)}})
		pub.recv()
	}
	clock.Advance(10 * time.Second)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "mexp", Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
	p := c.recvPublish()
	if string(p.Payload) != "100" {
		t.Fatalf("got %q: the expired message was delivered", p.Payload)
	}
	if e := p.Properties.MessageExpiryInterval; e == nil || *e != 90 {
		t.Fatalf("remaining expiry %v, want 90", e)
	}
	if b.srv.Stats().Drops[DropExpired] != 1 {
		t.Fatalf("drops %v", b.srv.Stats().Drops)
	}
}

func TestWill(t *testing.T) {
	clock := newFakeClock()
	b := startBroker(t, nil, withClock(clock))
	watch := dialRaw(t, b.addr, packet.V5)
	watch.connect(&packet.Connect{ClientID: "watch", CleanStart: true})
	watch.subscribe(1, 0, packet.Subscription{Filter: "will/#", QoS: 1})

	connectWithWill := func(id string, delay uint32) *rawClient {
		c := dialRaw(t, b.addr, packet.V5)
		c.connect(&packet.Connect{ClientID: id, CleanStart: true, WillFlag: true, WillQoS: 1,
			WillTopic: "will/" + id, WillPayload: []byte("gone"),
			Properties:     packet.Properties{SessionExpiryInterval: u32(3600)},
			WillProperties: packet.Properties{WillDelayInterval: u32(delay)}})
		return c
	}
	t.Run("normal disconnect suppresses", func(t *testing.T) {
		c := connectWithWill("w0", 0)
		c.send(&packet.Disconnect{})
		c.expectClosed()
		watch.expectNothing(100 * time.Millisecond)
	})
	t.Run("abrupt close publishes", func(t *testing.T) {
		c := connectWithWill("w1", 0)
		c.nc.Close()
		p := watch.recvPublish()
		if p.Topic != "will/w1" || string(p.Payload) != "gone" {
			t.Fatalf("got %+v", p)
		}
		watch.send(&packet.Puback{PacketID: p.PacketID})
	})
	t.Run("disconnect with will message", func(t *testing.T) {
		c := connectWithWill("w2", 0)
		c.send(&packet.Disconnect{ReasonCode: packet.DisconnectWithWillMessage})
		p := watch.recvPublish()
		if p.Topic != "will/w2" {
			t.Fatalf("got %+v", p)
		}
		watch.send(&packet.Puback{PacketID: p.PacketID})
	})
	t.Run("delay", func(t *testing.T) {
		c := connectWithWill("w3", 30)
		c.nc.Close()
		watch.expectNothing(100 * time.Millisecond)
		clock.Advance(31 * time.Second)
		p := watch.recvPublish()
		if p.Topic != "will/w3" {
			t.Fatalf("got %+v", p)
		}
		watch.send(&packet.Puback{PacketID: p.PacketID})
	})
	t.Run("reconnect within delay cancels", func(t *testing.T) {
		c := connectWithWill("w4", 30)
		c.nc.Close()
		eventually(t, 5*time.Second, "offline", func() bool { i, _ := b.srv.Session("w4"); return !i.Online })
		c = dialRaw(t, b.addr, packet.V5)
		c.connect(&packet.Connect{ClientID: "w4", Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
		clock.Advance(31 * time.Second)
		watch.expectNothing(1500 * time.Millisecond)
	})
}
