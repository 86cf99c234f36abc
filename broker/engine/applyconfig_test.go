package engine

import (
	"path/filepath"
	"testing"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
)

func TestApplyConfigHotLimits(t *testing.T) {
	cfg := testConfig()
	cfg.Queues.OverflowPolicy = config.OverflowRejectPublish
	b := startBroker(t, cfg)
	offlineSubscriber(t, b, "hot", "hot", 1)

	next := cfg.Clone()
	next.ConfigGeneration = 7
	next.Queues.MaxQueuedMessages = 1
	next.DataDir = "/elsewhere"
	changes, err := b.srv.ApplyConfig(next)
	if err != nil || len(changes) != 1 || changes[0].Field != "dataDir" || changes[0].Class != config.Restart {
		t.Fatalf("restart changes %+v", changes)
	}
	if b.srv.ConfigGeneration() != 7 || b.srv.Stats().ConfigGeneration != 7 {
		t.Fatal("generation not applied")
	}
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "hotpub", CleanStart: true})
	if codes := publishQoS1(t, pub, "hot", "a", "b"); codes[1] != packet.QuotaExceeded {
		t.Fatalf("new queue limit not applied: %v", codes)
	}
}

func TestInboundPacketTooLarge(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxPacketSize = 128
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	ack := c.connect(&packet.Connect{ClientID: "big", CleanStart: true})
	if m := ack.Properties.MaximumPacketSize; m == nil || *m != 128 {
		t.Fatalf("announced maximum packet size %v", m)
	}
	c.send(&packet.Publish{Topic: "big", Payload: make([]byte, 200)})
	if d := c.expectClosed(); d == nil || d.ReasonCode != packet.PacketTooLarge {
		t.Fatalf("got %+v", d)
	}
}

func TestMaxSubscriptionsPerClient(t *testing.T) {
	cfg := testConfig()
	cfg.Limits.MaxSubscriptionsPerClient = 2
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "subs", CleanStart: true})
	ack := c.subscribe(1, 0, packet.Subscription{Filter: "a"}, packet.Subscription{Filter: "b"},
		packet.Subscription{Filter: "c"}, packet.Subscription{Filter: "a", QoS: 1})
	want := []packet.ReasonCode{packet.GrantedQoS0, packet.GrantedQoS0, packet.QuotaExceeded, packet.GrantedQoS1}
	for i := range want {
		if ack.ReasonCodes[i] != want[i] {
			t.Fatalf("SUBACK %v, want %v", ack.ReasonCodes, want)
		}
	}
	ack = c.subscribe(2, 0, packet.Subscription{Filter: "bad/#/x"})
	if ack.ReasonCodes[0] != packet.TopicFilterInvalid {
		t.Fatalf("invalid filter: %v", ack.ReasonCodes)
	}
}

// TestReloadBadUsersFileKeepsEverything: a config whose users file
// cannot be loaded is refused whole; the old generation and ACL stay in
// force.
func TestReloadBadUsersFileKeepsEverything(t *testing.T) {
	cfg := testConfig()
	cfg.ConfigGeneration = 1
	cfg.Auth.ACL = []config.ACLRule{{User: "", Topic: "open/#", Access: "readwrite"}}
	b := startBroker(t, cfg)
	next := cfg.Clone()
	next.ConfigGeneration = 2
	next.Auth.UsersFile = filepath.Join(t.TempDir(), "missing")
	next.Auth.ACL = nil
	if _, err := b.srv.ApplyConfig(next); err == nil {
		t.Fatal("ApplyConfig accepted a missing users file")
	}
	if g := b.srv.ConfigGeneration(); g != 1 {
		t.Fatalf("generation %d reported after a refusal", g)
	}
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "keep", CleanStart: true})
	if codes := publishQoS1(t, c, "closed", "x"); codes[0] != packet.NotAuthorized {
		t.Errorf("the old ACL is not in force: %v", codes)
	}
}
