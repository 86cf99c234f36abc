package server

import (
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
	changes := b.srv.ApplyConfig(next)
	if len(changes) != 1 || changes[0].Field != "dataDir" || changes[0].Class != config.Restart {
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
