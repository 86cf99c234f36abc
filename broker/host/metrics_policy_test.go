package host

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/packet"
)

// mqttClient speaks raw MQTT 5.0 to a real engine through the host's
// listener, for the tests that need sessions with queued messages.
type mqttClient struct {
	t  *testing.T
	nc net.Conn
	r  *packet.Reader
}

// dialMQTT connects to addr with p and expects CONNACK Success.
func dialMQTT(t *testing.T, addr string, p *packet.Connect) *mqttClient {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := &mqttClient{t: t, nc: nc, r: packet.NewReader(nc, packet.V5, 0)}
	p.ProtocolVersion = packet.V5
	c.send(p)
	if ack, ok := c.recv().(*packet.Connack); !ok || ack.ReasonCode != packet.Success {
		t.Fatalf("CONNACK for %s: %+v", p.ClientID, ack)
	}
	return c
}

func (c *mqttClient) send(p packet.Packet) {
	c.t.Helper()
	if err := packet.Write(c.nc, p, packet.V5); err != nil {
		c.t.Fatal(err)
	}
}

func (c *mqttClient) recv() packet.Packet {
	c.t.Helper()
	p, err := c.r.ReadPacket()
	if err != nil {
		c.t.Fatal(err)
	}
	return p
}

// offlineSession leaves a persistent session for id subscribed to filter
// at QoS 1, offline.
func offlineSession(t *testing.T, e *engine.Server, addr, id, filter string) {
	t.Helper()
	exp := uint32(3600)
	c := dialMQTT(t, addr, &packet.Connect{ClientID: id, CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: &exp}})
	c.send(&packet.Subscribe{PacketID: 1, Subscriptions: []packet.Subscription{{Filter: filter, QoS: 1}}})
	if _, ok := c.recv().(*packet.Suback); !ok {
		t.Fatal("expected SUBACK")
	}
	c.send(&packet.Disconnect{})
	eventually(t, 5*time.Second, id+" offline", func() bool {
		i, ok := e.Session(id)
		return ok && !i.Online
	})
}

// publishN publishes n QoS 1 messages to topic and waits for each PUBACK.
func publishN(t *testing.T, c *mqttClient, topic string, n int) {
	t.Helper()
	for i := range n {
		c.send(&packet.Publish{QoS: 1, PacketID: uint16(i + 1), Topic: topic, Payload: []byte(strconv.Itoa(i))})
		if _, ok := c.recv().(*packet.Puback); !ok {
			t.Fatal("expected PUBACK")
		}
	}
}

// policyEngine runs a real engine with cfg behind an MQTT listener and
// returns it with the listener's address.
func policyEngine(t *testing.T, cfg *config.Config) (*engine.Server, string) {
	t.Helper()
	e := startEngine(t, cfg)
	ls := startListeners(t, listenersOnly("127.0.0.1:0", "", ""), e)
	return e, ls.Addr(ListenerMQTT).String()
}

// TestQueuePolicyAdminAndMetrics: the admin API shows each session's
// policy, and /metrics the per-policy depth and drops, as the engine
// reports them.
func TestQueuePolicyAdminAndMetrics(t *testing.T) {
	cfg := config.Default()
	two, four, three := int64(2), int64(4), int64(3)
	cfg.Queues.Policies = []config.QueuePolicy{
		{Name: "sensors", ClientID: "sensor-*", MaxQueuedMessages: &two, OverflowPolicy: config.OverflowDropOldest},
		{Name: "actuators", Principal: "act-*", MaxQueuedMessages: &four, OverflowPolicy: config.OverflowRejectPublish},
		{Name: "firmware", TopicFilter: "fw/#", MaxQueuedMessages: &three, OverflowPolicy: config.OverflowDropNewest},
	}
	e, addr := policyEngine(t, cfg)
	offlineSession(t, e, addr, "sensor-1", "s")
	pub := dialMQTT(t, addr, &packet.Connect{ClientID: "pub", CleanStart: true})
	publishN(t, pub, "s", 3)
	srv := httptest.NewServer(NewAdminHandler(AdminConfig{Backend: e, Version: "test", Started: time.Now(),
		Log: testLogger(t), Auth: openAdminAuth(t)}))
	t.Cleanup(srv.Close)

	_, body, _ := call(t, srv, "GET", "/v1/sessions/sensor-1", "")
	var info engine.SessionInfo
	if err := json.Unmarshal([]byte(body), &info); err != nil || info.Policy != "sensors" {
		t.Errorf("/v1/sessions/sensor-1: %v %s", err, body)
	}
	_, body, _ = call(t, srv, "GET", "/v1/sessions", "")
	var list SessionList
	if err := json.Unmarshal([]byte(body), &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Sessions {
		if want := map[string]string{"sensor-1": "sensors", "pub": "default"}[s.ClientID]; s.Policy != want {
			t.Errorf("/v1/sessions: %s has policy %q, want %q", s.ClientID, s.Policy, want)
		}
	}
	_, body, _ = call(t, srv, "GET", "/metrics", "")
	for _, line := range []string{
		`bollard_policy_queued_messages{policy="sensors"} 2`,
		`bollard_policy_queued_messages{policy="actuators"} 0`,
		`bollard_policy_queued_messages{policy="default"} 0`,
		`bollard_policy_dropped_messages_total{policy="sensors",reason="queue_full"} 1`,
		`bollard_policy_dropped_messages_total{policy="firmware",reason="policy_store_full"} 0`,
		`bollard_policy_store_budget_bytes{policy="sensors"} 0`,
		`bollard_dropped_messages_total{reason="policy_store_full"} 0`,
	} {
		if !strings.Contains(body, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	if n := strings.Count(body, "bollard_policy_queued_bytes{"); n != 4 {
		t.Errorf("%d policy label values, want 3 policies + default", n)
	}
	if strings.Contains(body, `policy="default",reason="not_authorized"`) {
		t.Error("not_authorized (a publisher's refusal) is exported per policy")
	}
}

// policyFile is a config file with one policy for client IDs sensor-*.
func policyFile(gen int, name string) string {
	return fmt.Sprintf(`configGeneration: %d
dataDir: ""
durability: {mode: none}
queues:
  policies:
  - name: %s
    clientID: "sensor-*"
    maxQueuedMessages: 5
`, gen, name)
}

// TestQueuePolicyHotReload: a policy renamed in the config file applies
// through the reloader to the engine's existing sessions without a
// restart; the session and its queue move to the new name, which the
// admin API and the engine's Stats report (broker/engine's
// TestQueuePolicyHotApply covers the limits that change with it).
func TestQueuePolicyHotReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bollard.yaml")
	write := func(content string) {
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(policyFile(1, "sensors"))
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e, addr := policyEngine(t, cfg)
	r := NewReloader(path, cfg, e, ReloaderOptions{Logger: testLogger(t)})
	offlineSession(t, e, addr, "sensor-1", "s/1")
	publishN(t, dialMQTT(t, addr, &packet.Connect{ClientID: "pub", CleanStart: true}), "s/1", 3)

	write(policyFile(2, "meters"))
	if err := r.Check(); err != nil {
		t.Fatal(err)
	}
	if st := r.Status(); st.AppliedGeneration != 2 || len(st.PendingRestartFields) != 0 || e.ConfigGeneration() != 2 {
		t.Fatalf("reload status %+v, engine generation %d", st, e.ConfigGeneration())
	}
	if i, _ := e.Session("sensor-1"); i.Policy != "meters" {
		t.Errorf("policy after the rename %q", i.Policy)
	}
	var names []string
	for _, p := range e.Stats().Policies {
		names = append(names, p.Name)
		if p.Name == "meters" && p.QueuedMessages != 3 {
			t.Errorf("meters did not take the queue: %+v", p)
		}
	}
	if strings.Join(names, ",") != "meters,default" {
		t.Errorf("policies reported %v", names)
	}
}
