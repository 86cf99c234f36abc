package engine

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/bollard-io/bollard/broker/packet"
)

// collector gathers received payloads.
type collector struct {
	mu   sync.Mutex
	msgs []string
}

func (c *collector) add(s string) {
	c.mu.Lock()
	c.msgs = append(c.msgs, s)
	c.mu.Unlock()
}

func (c *collector) snapshot() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.msgs...)
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.msgs)
}

func checkInOrder(t *testing.T, got []string, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("received %d messages, want %d", len(got), n)
	}
	for i, s := range got {
		if s != strconv.Itoa(i) {
			t.Fatalf("message %d is %q: out of order or duplicated", i, s)
		}
	}
}

func v3Client(t *testing.T, addr, id string, clean bool, onMsg func(mqtt.Message)) mqtt.Client {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetCleanSession(clean).
		SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(true).SetResumeSubs(false)
	if onMsg != nil {
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { onMsg(m) })
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

// The persistent-session scenario of issue 3 with a 3.1.1 client.
func TestPersistentSessionQueueV311(t *testing.T) {
	b := startBroker(t, nil)
	const n = 1000
	var got collector
	handler := func(m mqtt.Message) { got.add(string(m.Payload())) }
	sub := v3Client(t, b.addr, "persist-311", false, handler)
	if tok := sub.Subscribe("p/311", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	sub.Disconnect(100)
	waitOffline(t, b, "persist-311")

	pub := v3Client(t, b.addr, "pub-311", true, nil)
	for i := range n {
		tok := pub.Publish("p/311", 1, false, strconv.Itoa(i))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	pub.Disconnect(100)
	if info, _ := b.srv.Session("persist-311"); info.QueuedMessages != n || info.Online {
		t.Fatalf("session info %+v", info)
	}

	o := mqtt.NewClientOptions().AddBroker("tcp://" + b.addr).SetClientID("persist-311").SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetOrderMatters(true).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { handler(m) })
	sub = mqtt.NewClient(o)
	tok := sub.Connect()
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if !tok.(*mqtt.ConnectToken).SessionPresent() {
		t.Fatal("session present = false")
	}
	eventually(t, 10*time.Second, "all queued messages", func() bool { return got.len() >= n })
	checkInOrder(t, got.snapshot(), n)
	sub.Disconnect(100)
}

func v5Connect(t *testing.T, addr string, cp *paho.Connect, onPub func(paho.PublishReceived) (bool, error)) (*paho.Client, *paho.Connack) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cfg := paho.ClientConfig{Conn: nc}
	if onPub != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){onPub}
	}
	c := paho.NewClient(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, cp)
	if err != nil {
		t.Fatalf("connect %s: %v", cp.ClientID, err)
	}
	return c, ack
}

// The persistent-session scenario with a 5.0 client.
func TestPersistentSessionQueueV5(t *testing.T) {
	b := startBroker(t, nil)
	const n = 1000
	var got collector
	onPub := func(pr paho.PublishReceived) (bool, error) {
		got.add(string(pr.Packet.Payload))
		return true, nil
	}
	ctx := context.Background()
	cp := &paho.Connect{ClientID: "persist-5", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: u32(3600)}}
	sub, ack := v5Connect(t, b.addr, cp, onPub)
	if ack.SessionPresent {
		t.Fatal("fresh session present")
	}
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "p/5", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	_ = sub.Disconnect(&paho.Disconnect{})
	waitOffline(t, b, "persist-5")

	pub, _ := v5Connect(t, b.addr, &paho.Connect{ClientID: "pub-5", CleanStart: true}, nil)
	for i := range n {
		if _, err := pub.Publish(ctx, &paho.Publish{Topic: "p/5", QoS: 1, Payload: []byte(strconv.Itoa(i))}); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	_ = pub.Disconnect(&paho.Disconnect{})

	cp.CleanStart = false
	sub, ack = v5Connect(t, b.addr, cp, onPub)
	if !ack.SessionPresent {
		t.Fatal("session present = false")
	}
	eventually(t, 10*time.Second, "all queued messages", func() bool { return got.len() >= n })
	checkInOrder(t, got.snapshot(), n)
	_ = sub.Disconnect(&paho.Disconnect{})
}

// QoS 2 exactly once, with the subscriber's connection dropped in the
// middle of each step of the exchange and the publisher resending.
func TestQoS2ExactlyOnceAcrossReconnect(t *testing.T) {
	b := startBroker(t, nil)
	props := packet.Properties{SessionExpiryInterval: u32(600)}
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "q2sub", CleanStart: true, Properties: props})
	sub.subscribe(1, 0, packet.Subscription{Filter: "q2", QoS: 2})

	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "q2pub", CleanStart: true, Properties: props})
	pub.send(&packet.Publish{QoS: 2, PacketID: 5, Topic: "q2", Payload: []byte("once")})
	if rec, ok := pub.recv().(*packet.Pubrec); !ok || rec.PacketID != 5 {
		t.Fatalf("expected PUBREC 5, got %+v", rec)
	}
	// The publisher loses the connection before PUBREL and resends the
	// PUBLISH with DUP: the broker must not route it again.
	pub.nc.Close()
	pub = dialRaw(t, b.addr, packet.V5)
	if ack := pub.connect(&packet.Connect{ClientID: "q2pub", Properties: props}); !ack.SessionPresent {
		t.Fatal("publisher session lost")
	}
	pub.send(&packet.Publish{QoS: 2, PacketID: 5, Dup: true, Topic: "q2", Payload: []byte("once")})
	if rec, ok := pub.recv().(*packet.Pubrec); !ok || rec.PacketID != 5 {
		t.Fatalf("expected PUBREC 5 again, got %+v", rec)
	}
	pub.send(&packet.Pubrel{PacketID: 5})
	if comp, ok := pub.recv().(*packet.Pubcomp); !ok || comp.ReasonCode != packet.Success {
		t.Fatalf("expected PUBCOMP, got %+v", comp)
	}

	// Subscriber: first delivery, dropped before PUBREC.
	first := sub.recvPublish()
	sub.nc.Close()
	sub = dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "q2sub", Properties: props})
	again := sub.recvPublish()
	if !again.Dup || again.PacketID != first.PacketID || string(again.Payload) != "once" {
		t.Fatalf("resend %+v, first %+v", again, first)
	}
	sub.send(&packet.Pubrec{PacketID: again.PacketID})
	if rel, ok := sub.recv().(*packet.Pubrel); !ok || rel.PacketID != again.PacketID {
		t.Fatalf("expected PUBREL, got %+v", rel)
	}
	// Dropped before PUBCOMP: the broker resends PUBREL, never the PUBLISH.
	sub.nc.Close()
	sub = dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "q2sub", Properties: props})
	if rel, ok := sub.recv().(*packet.Pubrel); !ok || rel.PacketID != again.PacketID {
		t.Fatalf("expected PUBREL resend, got %+v", rel)
	}
	sub.send(&packet.Pubcomp{PacketID: again.PacketID})
	sub.expectNothing(200 * time.Millisecond)
	eventually(t, 5*time.Second, "empty queue", func() bool {
		info, _ := b.srv.Session("q2sub")
		return info.QueuedMessages == 0 && info.Inflight == 0
	})
}

// A client with Receive Maximum 2 never has more than 2 unacknowledged
// messages, and the backlog keeps flowing as it acknowledges.
func TestReceiveMaximumPacing(t *testing.T) {
	b := startBroker(t, nil)
	props := packet.Properties{SessionExpiryInterval: u32(600), ReceiveMaximum: u16(2)}
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "rm", CleanStart: true, Properties: props})
	sub.subscribe(1, 0, packet.Subscription{Filter: "rm", QoS: 1})
	sub.send(&packet.Disconnect{})
	sub.expectClosed()
	waitOffline(t, b, "rm")

	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "rmpub", CleanStart: true})
	const n = 50
	for i := range n {
		pub.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: "rm", Payload: []byte(strconv.Itoa(i))})
		pub.recv()
	}
	sub = dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "rm", Properties: props})
	for i := 0; i < n; i += 2 {
		a, c := sub.recvPublish(), sub.recvPublish()
		if string(a.Payload) != strconv.Itoa(i) || string(c.Payload) != strconv.Itoa(i+1) {
			t.Fatalf("got %q %q at %d", a.Payload, c.Payload, i)
		}
		sub.expectNothing(30 * time.Millisecond) // window full
		sub.send(&packet.Puback{PacketID: a.PacketID})
		sub.send(&packet.Puback{PacketID: c.PacketID})
	}
}

func TestRetained(t *testing.T) {
	b := startBroker(t, nil)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "rpub", CleanStart: true})
	pub.send(&packet.Publish{QoS: 1, PacketID: 1, Retain: true, Topic: "r/a", Payload: []byte("A")})
	pub.recv()
	pub.send(&packet.Publish{QoS: 1, PacketID: 2, Retain: true, Topic: "r/b", Payload: []byte("B")})
	pub.recv()
	// Empty payload deletes r/b [MQTT-3.3.1-6].
	pub.send(&packet.Publish{QoS: 1, PacketID: 3, Retain: true, Topic: "r/b"})
	pub.recv()

	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "rsub", CleanStart: true})
	sub.subscribe(1, 0, packet.Subscription{Filter: "r/+", QoS: 1})
	p := sub.recvPublish()
	if p.Topic != "r/a" || !p.Retain || string(p.Payload) != "A" {
		t.Fatalf("retained %+v", p)
	}
	sub.send(&packet.Puback{PacketID: p.PacketID})
	sub.expectNothing(100 * time.Millisecond)
	// Retain handling 1: only for new subscriptions; 2: never.
	sub.subscribe(2, 0, packet.Subscription{Filter: "r/+", QoS: 1, RetainHandling: 1})
	sub.subscribe(3, 0, packet.Subscription{Filter: "r/#", QoS: 1, RetainHandling: 2})
	sub.expectNothing(100 * time.Millisecond)
	// A live message to an existing subscription has retain=0 unless
	// Retain As Published.
	sub.subscribe(4, 0, packet.Subscription{Filter: "rap", QoS: 0, RetainAsPublished: true, RetainHandling: 2})
	pub.send(&packet.Publish{Retain: true, Topic: "r/a", Payload: []byte("A2")})
	pub.send(&packet.Publish{Retain: true, Topic: "rap", Payload: []byte("R")})
	for range 2 {
		p := sub.recvPublish()
		switch p.Topic {
		case "r/a":
			if p.Retain {
				t.Fatal("retain flag set on a live message")
			}
		case "rap":
			if !p.Retain {
				t.Fatal("retain flag lost with Retain As Published")
			}
		}
	}
	eventually(t, 5*time.Second, "two retained messages", func() bool { return b.srv.Stats().Retained == 2 })
}

func TestTopicAliases(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "tasub", CleanStart: true, Properties: packet.Properties{TopicAliasMaximum: u16(5)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "ta/#", QoS: 0})
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "tapub", CleanStart: true})
	// Inbound: set alias 1, then use it with an empty topic.
	pub.send(&packet.Publish{Topic: "ta/x", Payload: []byte("1"), Properties: packet.Properties{TopicAlias: u16(1)}})
	pub.send(&packet.Publish{Payload: []byte("2"), Properties: packet.Properties{TopicAlias: u16(1)}})
	// Outbound: the first delivery carries topic + alias, the second only
	// the alias.
	p1, p2 := sub.recvPublish(), sub.recvPublish()
	if p1.Topic != "ta/x" || p1.Properties.TopicAlias == nil {
		t.Fatalf("first %+v", p1)
	}
	if p2.Topic != "" || p2.Properties.TopicAlias == nil || *p2.Properties.TopicAlias != *p1.Properties.TopicAlias || string(p2.Payload) != "2" {
		t.Fatalf("second %+v", p2)
	}
}

func TestMaximumPacketSizeToClient(t *testing.T) {
	b := startBroker(t, nil)
	sub := dialRaw(t, b.addr, packet.V5)
	sub.connect(&packet.Connect{ClientID: "mps", CleanStart: true, Properties: packet.Properties{MaximumPacketSize: u32(64)}})
	sub.subscribe(1, 0, packet.Subscription{Filter: "mps", QoS: 1})
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "mpspub", CleanStart: true})
	pub.send(&packet.Publish{Topic: "mps", Payload: make([]byte, 200)})
	pub.send(&packet.Publish{Topic: "mps", Payload: []byte("small")})
	if p := sub.recvPublish(); string(p.Payload) != "small" {
		t.Fatalf("got %d bytes", len(p.Payload))
	}
	if b.srv.Stats().Drops[DropTooLarge] != 1 {
		t.Fatalf("drops %v", b.srv.Stats().Drops)
	}
}

func TestSharedSubscription(t *testing.T) {
	b := startBroker(t, nil)
	var subs []*rawClient
	for i := range 2 {
		c := dialRaw(t, b.addr, packet.V5)
		c.connect(&packet.Connect{ClientID: fmt.Sprintf("sh%d", i), CleanStart: true})
		c.subscribe(1, 0, packet.Subscription{Filter: "$share/g/sh", QoS: 0})
		subs = append(subs, c)
	}
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "shpub", CleanStart: true})
	for range 4 {
		pub.send(&packet.Publish{Topic: "sh", Payload: []byte("m")})
	}
	for _, c := range subs {
		c.recvPublish()
		c.recvPublish()
		c.expectNothing(50 * time.Millisecond)
	}
}
