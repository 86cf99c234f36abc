//go:build e2e

package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"

	"github.com/bollard-io/bollard/test/mqtttest"
)

// Scenario 1: apply a manifest, Ready within 60 s, and a real client
// publishes and subscribes through the reported endpoint.
func TestApplyReadyPubSub(t *testing.T) {
	ns := namespace(t, "s1")
	start := time.Now()
	createBroker(t, newBroker(ns, "hello"), 60*time.Second)
	t.Logf("MQTTBroker Ready %s after apply", time.Since(start).Round(100*time.Millisecond))
	addr := mqttAddr(t, brokerPod(t, ns, "hello"))

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	got := make(chan *paho.Publish, 1)
	sub, _, err := mqtttest.Dial(ctx, addr, "s1-sub", true, 0, func(p *paho.Publish) {
		select {
		case got <- p:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Disconnect(&paho.Disconnect{}) //nolint:errcheck // best effort
	if _, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "greetings/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	pub, _, err := mqtttest.Dial(ctx, addr, "s1-pub", true, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Disconnect(&paho.Disconnect{}) //nolint:errcheck // best effort
	if _, err := pub.Publish(ctx, &paho.Publish{Topic: "greetings/e2e", QoS: 1, Payload: []byte("hello bollard")}); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-got:
		if string(p.Payload) != "hello bollard" || p.Topic != "greetings/e2e" {
			t.Errorf("received %q on %s", p.Payload, p.Topic)
		}
	case <-ctx.Done():
		t.Fatal("the subscriber received nothing")
	}
}
