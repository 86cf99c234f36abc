//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	mqtt "github.com/eclipse/paho.mqtt.golang"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/bollard-io/bollard/api/v1alpha1"
	"github.com/bollard-io/bollard/test/mqtttest"
)

// sessionExpiry is the expiry cap of scenario 6: long enough for a broker
// restart to fit inside it, short enough to wait out.
const sessionExpiry = 20 * time.Second

// Scenario 6: the session expiry set in the manifest is honoured by the
// running broker across a restart: 5.0 clients are granted the capped
// expiry, a session resumed inside it survives the restart with its queue,
// and sessions left alone (5.0 capped, 3.1.1 default) expire on time.
func TestSessionExpiryAcrossRestart(t *testing.T) {
	ns := namespace(t, "s6")
	b := newBroker(ns, "expiry")
	b.Spec.Sessions = v1alpha1.Sessions{
		MaxSessionExpiry:     metav1.Duration{Duration: sessionExpiry},
		DefaultSessionExpiry: metav1.Duration{Duration: sessionExpiry},
	}
	createBroker(t, b, 60*time.Second)
	before := brokerPod(t, ns, "expiry")
	addr, admin := mqttAddr(t, before), adminAddr(t, before)

	for _, id := range []string{"s6-resumed", "s6-expired"} {
		grantedExpiry(t, addr, id)
	}
	subscribe311(t, addr, "s6-v311")
	left := time.Now()
	publishOne(t, addr, "expiry/x", "seq-1")

	updateBroker(t, ns, "expiry", func(b *v1alpha1.MQTTBroker) {
		b.Annotations = map[string]string{v1alpha1.RestartedAtAnnotation: time.Now().UTC().Format(time.RFC3339)}
	})
	eventually(t, 60*time.Second, "the broker pod restarted", func(ctx context.Context) (bool, error) {
		p, err := testCluster.Kube.CoreV1().Pods(ns).Get(ctx, "expiry-0", metav1.GetOptions{})
		return err == nil && p.UID != before.UID && podReady(p), err
	})
	if time.Since(left) > sessionExpiry-2*time.Second {
		t.Fatalf("the restart took %s, too long to test resuming inside the %s expiry", time.Since(left), sessionExpiry)
	}
	box := newInbox()
	c, ack, err := mqtttest.Dial(t.Context(), addr, "s6-resumed", false, 3600, box.add)
	if err != nil {
		t.Fatal(err)
	}
	if !ack.SessionPresent {
		t.Fatal("a session resumed inside its expiry was lost across the restart")
	}
	eventually(t, 10*time.Second, "the queued message after the restart", func(context.Context) (bool, error) {
		return box.check(map[string][]int{"expiry/x": {1}}) == 0, nil
	})
	_ = c.Disconnect(&paho.Disconnect{}) // best effort

	eventually(t, sessionExpiry+20*time.Second, "the idle sessions expired", func(ctx context.Context) (bool, error) {
		for _, id := range []string{"s6-expired", "s6-v311"} {
			ok, err := sessionExists(ctx, admin, id)
			if err != nil {
				return false, err
			}
			if ok {
				return false, fmt.Errorf("session %s still exists %s after its client left", id, time.Since(left))
			}
		}
		return true, nil
	})
	if d := time.Since(left); d < sessionExpiry {
		t.Errorf("sessions expired after %s, before their %s expiry", d, sessionExpiry)
	}
	_, ack, err = mqtttest.Dial(t.Context(), addr, "s6-expired", false, 3600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ack.SessionPresent {
		t.Error("an expired session was resumed")
	}
}

// grantedExpiry creates a persistent 5.0 session asking for an hour and
// checks that CONNACK grants the manifest's cap; it leaves the session
// offline, subscribed to expiry/#.
func grantedExpiry(t *testing.T, addr, clientID string) {
	t.Helper()
	c, ack, err := mqtttest.Dial(t.Context(), addr, clientID, true, 3600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Properties == nil || ack.Properties.SessionExpiryInterval == nil ||
		*ack.Properties.SessionExpiryInterval != uint32(sessionExpiry/time.Second) {
		t.Errorf("%s: CONNACK session expiry %+v, want the cap %s", clientID, ack.Properties, sessionExpiry)
	}
	if _, err := c.Subscribe(t.Context(), &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "expiry/#", QoS: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		t.Fatal(err)
	}
}

// subscribe311 creates a persistent MQTT 3.1.1 session (cleanSession=0),
// whose expiry is the manifest's defaultSessionExpiry.
func subscribe311(t *testing.T, addr, clientID string) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(clientID).SetCleanSession(false).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("3.1.1 connect: %v", tok.Error())
	}
	if tok := c.Subscribe("expiry/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("3.1.1 subscribe: %v", tok.Error())
	}
	c.Disconnect(100)
}

func publishOne(t *testing.T, addr, topic, payload string) {
	t.Helper()
	c, _, err := mqtttest.Dial(t.Context(), addr, "s6-pub", true, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(&paho.Disconnect{}) //nolint:errcheck // best effort
	if _, err := c.Publish(t.Context(), &paho.Publish{Topic: topic, QoS: 1, Payload: []byte(payload)}); err != nil {
		t.Fatal(err)
	}
}
