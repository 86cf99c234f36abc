// Package mqtttest holds the MQTT 5.0 test clients (on
// github.com/eclipse/paho.golang) that the binary-level tests of
// cmd/bollard and the end-to-end scenarios of test/e2e share: a dial that
// fails on a refused CONNACK, and the creation of an offline persistent
// subscriber.
package mqtttest

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// Dial connects a 5.0 client to addr. expiry > 0 makes the session
// persistent; clean starts a new session. onMsg, when set, sees every
// PUBLISH before paho acknowledges it. A CONNACK with an error reason code
// is returned with an error (a nil CONNACK when none arrived).
func Dial(ctx context.Context, addr, clientID string, clean bool, expiry uint32, onMsg func(*paho.Publish)) (*paho.Client, *paho.Connack, error) {
	conn, err := (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("mqtttest: dial %s: %w", addr, err)
	}
	cfg := paho.ClientConfig{ClientID: clientID, Conn: conn, Session: newSession(), OnClientError: func(error) {}, PacketTimeout: 10 * time.Second}
	if onMsg != nil {
		cfg.OnPublishReceived = []func(paho.PublishReceived) (bool, error){
			func(pr paho.PublishReceived) (bool, error) { onMsg(pr.Packet); return true, nil },
		}
	}
	c := paho.NewClient(cfg)
	cp := &paho.Connect{ClientID: clientID, CleanStart: clean, KeepAlive: 30}
	if expiry > 0 {
		cp.Properties = &paho.ConnectProperties{SessionExpiryInterval: &expiry}
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ack, err := c.Connect(cctx, cp)
	if err != nil {
		_ = conn.Close()
		// paho reports a refusing CONNACK as an error too: keep the
		// CONNACK (its reason code, its Server Reference) for the caller.
		return nil, ack, fmt.Errorf("mqtttest: connect %s: %w", clientID, err)
	}
	if ack.ReasonCode >= 0x80 {
		_ = conn.Close()
		return nil, ack, fmt.Errorf("mqtttest: connect %s: reason code 0x%02x", clientID, ack.ReasonCode)
	}
	return c, ack, nil
}

// SubscribeOffline creates a persistent session (expiry in seconds)
// subscribed to filter at qos and disconnects it normally, leaving it
// offline to queue messages.
func SubscribeOffline(ctx context.Context, addr, clientID, filter string, qos byte, expiry uint32) error {
	c, _, err := Dial(ctx, addr, clientID, true, expiry, nil)
	if err != nil {
		return err
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: filter, QoS: qos}}}); err != nil {
		return fmt.Errorf("mqtttest: subscribe %s: %w", clientID, err)
	}
	if err := c.Disconnect(&paho.Disconnect{}); err != nil {
		return fmt.Errorf("mqtttest: disconnect %s: %w", clientID, err)
	}
	return nil
}
