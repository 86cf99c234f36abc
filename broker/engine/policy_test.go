package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/packet"
	"github.com/bollard-io/bollard/broker/store/memstore"
)

func ptr[T any](v T) *T { return &v }

// policyConfig has three device classes: sensors by client ID (small
// queues, DropOldest), actuators by principal (never drop: refuse new)
// and firmware by topic filter (DropNewest).
func policyConfig() *config.Config {
	cfg := testConfig()
	cfg.Queues.Policies = []config.QueuePolicy{
		{Name: "sensors", ClientID: "sensor-*", MaxQueuedMessages: ptr[int64](2),
			OverflowPolicy: config.OverflowDropOldest},
		{Name: "actuators", Principal: "act-*", MaxQueuedMessages: ptr[int64](4),
			OverflowPolicy: config.OverflowRejectPublish},
		{Name: "firmware", TopicFilter: "fw/#", MaxQueuedMessages: ptr[int64](3),
			OverflowPolicy: config.OverflowDropNewest},
	}
	return cfg
}

// policySubscriber is offlineSubscriber for a user ("" for anonymous).
func policySubscriber(t *testing.T, b *testBroker, id, user, filter string) {
	t.Helper()
	c := login(t, b, packet.V5, id, user, 3600)
	c.subscribe(1, 0, packet.Subscription{Filter: filter, QoS: 1})
	c.send(&packet.Disconnect{})
	c.expectClosed()
	waitOffline(t, b, id)
}

func sessionPolicy(t *testing.T, b *testBroker, id string) string {
	t.Helper()
	i, ok := b.srv.Session(id)
	if !ok {
		t.Fatalf("no session %s", id)
	}
	return i.Policy
}

func policyStat(t *testing.T, b *testBroker, name string) PolicyStats {
	t.Helper()
	for _, p := range b.srv.Stats().Policies {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("no policy %s in %+v", name, b.srv.Stats().Policies)
	return PolicyStats{}
}

// drainAs resumes the session id as user, reads n queued messages and
// returns their payloads, in order; no more may follow.
func drainAs(t *testing.T, b *testBroker, id, user string, n int) []string {
	t.Helper()
	c := login(t, b, packet.V5, id, user, 3600)
	var out []string
	for range n {
		p := c.recvPublish()
		out = append(out, string(p.Payload))
		c.send(&packet.Puback{PacketID: p.PacketID})
	}
	c.expectNothing(100 * time.Millisecond)
	return out
}

func payloads(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(i)
	}
	return out
}

func TestQueuePoliciesSelectSessions(t *testing.T) {
	b := startBrokerWith(t, policyConfig(), WithAuthenticator(userAuth{}, nil))
	policySubscriber(t, b, "sensor-1", "", "data/s")
	policySubscriber(t, b, "a1", "act-one", "data/a")
	policySubscriber(t, b, "dev9", "", "fw/dev9/+")
	policySubscriber(t, b, "other", "", "data/o")
	// First match wins: a sensor client ID logged in as an actuator.
	policySubscriber(t, b, "sensor-2", "act-two", "data/s2")
	// A subscription wider than the filter is not inside it.
	policySubscriber(t, b, "wide", "", "#")
	for id, want := range map[string]string{"sensor-1": "sensors", "a1": "actuators", "dev9": "firmware",
		"other": config.DefaultPolicyName, "sensor-2": "sensors", "wide": config.DefaultPolicyName} {
		if got := sessionPolicy(t, b, id); got != want {
			t.Errorf("%s: policy %q, want %q", id, got, want)
		}
	}

	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	publishQoS1(t, pub, "data/s", payloads(6)...)
	codes := publishQoS1(t, pub, "data/a", payloads(6)...)
	for i, c := range codes {
		if want := packet.ReasonCode(0); i >= 4 {
			want = packet.QuotaExceeded
			if c != want {
				t.Errorf("actuator publish %d: %v, want %v", i, c, want)
			}
		} else if c != want {
			t.Errorf("actuator publish %d: %v", i, c)
		}
	}
	publishQoS1(t, pub, "fw/dev9/img", payloads(6)...)
	publishQoS1(t, pub, "data/o", payloads(6)...)

	for _, tc := range []struct{ id, user, want string }{
		{"sensor-1", "", "4,5"},      // DropOldest, 2
		{"a1", "act-one", "0,1,2,3"}, // RejectPublish, 4
		{"dev9", "", "0,1,2"},        // DropNewest, 3
		{"other", "", "0,1,2,3,4,5"},
	} {
		if got := strings.Join(drainAs(t, b, tc.id, tc.user, strings.Count(tc.want, ",")+1), ","); got != tc.want {
			t.Errorf("%s kept %s, want %s", tc.id, got, tc.want)
		}
	}
	for name, want := range map[string]map[string]uint64{
		"sensors":                {DropQueueFull: 4},
		"actuators":              {DropQuotaRejected: 2},
		"firmware":               {DropQueueFull: 3},
		config.DefaultPolicyName: {},
	} {
		p := policyStat(t, b, name)
		for reason, n := range p.Drops {
			if n != want[reason] {
				t.Errorf("%s drops[%s] = %d, want %d (all: %v)", name, reason, n, want[reason], p.Drops)
			}
		}
		for reason, n := range want {
			if p.Drops[reason] != n {
				t.Errorf("%s drops[%s] = %d, want %d", name, reason, p.Drops[reason], n)
			}
		}
	}
	if st := b.srv.Stats(); st.Drops[DropQueueFull] != 7 || st.Drops[DropQuotaRejected] != 2 {
		t.Errorf("broker-wide drops %v", st.Drops)
	}
}

// policyFile is a config file for TestQueuePolicyHotApply, with one
// policy for client IDs sensor-*.
func policyFile(gen, max int, overflow string) string {
	return fmt.Sprintf(`configGeneration: %d
dataDir: ""
durability: {mode: none}
queues:
  policies:
  - name: sensors
    clientID: "sensor-*"
    maxQueuedMessages: %d
    overflowPolicy: %s
`, gen, max, overflow)
}

// loadPolicyFile loads policyFile(gen, max, overflow) as the config file
// loader reads it.
func loadPolicyFile(t *testing.T, gen, max int, overflow string) *config.Config {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bollard.yaml")
	if err := os.WriteFile(path, []byte(policyFile(gen, max, overflow)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestQueuePolicyHotApply changes the policy of an existing offline
// session (a new config file applied, as the host's reloader applies it):
// its next overflow follows the new policy, and no field needs a restart.
// broker/host's TestQueuePolicyHotReload drives the same change through
// the reloader.
func TestQueuePolicyHotApply(t *testing.T) {
	b := startBroker(t, loadPolicyFile(t, 1, 5, config.OverflowDropOldest))
	offlineSubscriber(t, b, "sensor-1", "s/1", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	publishQoS1(t, pub, "s/1", payloads(3)...)
	if p := policyStat(t, b, "sensors"); p.QueuedMessages != 3 || p.QueuedBytes <= 0 {
		t.Fatalf("sensors before reload: %+v", p)
	}

	next := loadPolicyFile(t, 2, 3, config.OverflowRejectPublish)
	restart, err := b.srv.ApplyConfig(next)
	if err != nil {
		t.Fatal(err)
	}
	if len(restart) != 0 || b.srv.ConfigGeneration() != 2 {
		t.Fatalf("applied generation %d, restart fields %+v", b.srv.ConfigGeneration(), restart)
	}
	if codes := publishQoS1(t, pub, "s/1", "x"); codes[0] != packet.QuotaExceeded {
		t.Fatalf("after reload a full sensor queue answered %v, want 0x97 (RejectPublish at 3)", codes)
	}
	if p := policyStat(t, b, "sensors"); p.Drops[DropQuotaRejected] != 1 || p.Drops[DropQueueFull] != 0 || p.QueuedMessages != 3 {
		t.Errorf("sensors after reload: %+v", p)
	}

	// Renamed: the session and its queue move to the new account; the old
	// name is no longer reported.
	renamed := next.Clone()
	renamed.ConfigGeneration = 3
	renamed.Queues.Policies[0].Name = "meters"
	if _, err := b.srv.ApplyConfig(renamed); err != nil {
		t.Fatal(err)
	}
	if got := sessionPolicy(t, b, "sensor-1"); got != "meters" {
		t.Errorf("policy after rename %q", got)
	}
	names := []string{}
	for _, p := range b.srv.Stats().Policies {
		names = append(names, p.Name)
	}
	if strings.Join(names, ",") != "meters,default" {
		t.Errorf("policies reported %v", names)
	}
	if p := policyStat(t, b, "meters"); p.QueuedMessages != 3 {
		t.Errorf("meters did not take the queue: %+v", p)
	}

	// Removed: the broker-wide values apply (10000 messages, DropOldest).
	none := renamed.Clone()
	none.ConfigGeneration = 4
	none.Queues.Policies = nil
	if _, err := b.srv.ApplyConfig(none); err != nil {
		t.Fatal(err)
	}
	if codes := publishQoS1(t, pub, "s/1", "y"); codes[0] != 0 {
		t.Fatalf("without policies the publish got %v", codes)
	}
	if got, p := sessionPolicy(t, b, "sensor-1"), policyStat(t, b, config.DefaultPolicyName); got != config.DefaultPolicyName || p.QueuedMessages != 4 {
		t.Errorf("after removal: policy %q, default %+v", got, p)
	}
}

// TestQueuePolicyFollowsSubscriptions: a policy that selects by topic
// filter is re-chosen when the session subscribes and unsubscribes.
func TestQueuePolicyFollowsSubscriptions(t *testing.T) {
	b := startBroker(t, policyConfig())
	c := dialRaw(t, b.addr, packet.V5)
	c.connect(&packet.Connect{ClientID: "dev", CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: u32(60)}})
	c.subscribe(1, 0, packet.Subscription{Filter: "status/dev"})
	if got := sessionPolicy(t, b, "dev"); got != config.DefaultPolicyName {
		t.Fatalf("policy %q", got)
	}
	c.subscribe(2, 0, packet.Subscription{Filter: "$share/g/fw/dev/#"})
	if got := sessionPolicy(t, b, "dev"); got != "firmware" {
		t.Fatalf("after a shared subscription inside fw/#: policy %q", got)
	}
	c.send(&packet.Unsubscribe{PacketID: 3, Filters: []string{"$share/g/fw/dev/#"}})
	if _, ok := c.recv().(*packet.Unsuback); !ok {
		t.Fatal("expected UNSUBACK")
	}
	if got := sessionPolicy(t, b, "dev"); got != config.DefaultPolicyName {
		t.Fatalf("after unsubscribing: policy %q", got)
	}
}

// TestQueuePolicyStoreShare: the sessions of a policy share a part of the
// store budget; beyond it their new messages are dropped (DropNewest) and
// counted as policy_store_full, while other sessions still queue.
func TestQueuePolicyStoreShare(t *testing.T) {
	cfg := testConfig()
	cfg.Queues.MaxStoreBytes = 100000
	cfg.Queues.Policies = []config.QueuePolicy{{Name: "tiny", ClientID: "tiny-*",
		OverflowPolicy: config.OverflowDropNewest, StoreBudgetPercent: ptr[int32](2)}}
	b := startBroker(t, cfg)
	offlineSubscriber(t, b, "tiny-1", "t", 1)
	offlineSubscriber(t, b, "tiny-2", "t", 1)
	offlineSubscriber(t, b, "big", "t", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	publishQoS1(t, pub, "t", payloads(40)...)

	p := policyStat(t, b, "tiny")
	if p.StoreBudget != 2000 {
		t.Errorf("store budget %d, want 2%% of 100000", p.StoreBudget)
	}
	if p.QueuedBytes > p.StoreBudget || p.QueuedMessages == 0 {
		t.Errorf("tiny holds %d bytes in %d messages, budget %d", p.QueuedBytes, p.QueuedMessages, p.StoreBudget)
	}
	if got := p.Drops[DropPolicyStoreFull]; got == 0 || got != uint64(80-p.QueuedMessages) {
		t.Errorf("policy_store_full drops %d, queued %d of 80", got, p.QueuedMessages)
	}
	if st := b.srv.Stats(); st.Drops[DropPolicyStoreFull] != p.Drops[DropPolicyStoreFull] {
		t.Errorf("broker-wide policy_store_full %d", st.Drops[DropPolicyStoreFull])
	}
	if i, _ := b.srv.Session("big"); i.QueuedMessages != 40 {
		t.Errorf("a session of no policy queued %d of 40", i.QueuedMessages)
	}
	// The sums of the policies are the broker's.
	var msgs int64
	for _, p := range b.srv.Stats().Policies {
		msgs += p.QueuedMessages
	}
	if st := b.srv.Stats(); msgs != st.QueuedMessages {
		t.Errorf("policies queue %d messages, the broker %d", msgs, st.QueuedMessages)
	}
}

// TestQueuePolicyExpiryCap: a policy's maxSessionExpiry caps what a 5.0
// client is granted (told in CONNACK) and a 3.1.1 session's default.
func TestQueuePolicyExpiryCap(t *testing.T) {
	cfg := testConfig()
	cfg.Queues.Policies = []config.QueuePolicy{{Name: "short", ClientID: "short-*", MaxSessionExpiry: ptr(config.Duration(time.Minute))}}
	b := startBroker(t, cfg)
	c := dialRaw(t, b.addr, packet.V5)
	ack := c.connect(&packet.Connect{ClientID: "short-1", CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
	if e := ack.Properties.SessionExpiryInterval; e == nil || *e != 60 {
		t.Errorf("granted expiry %v, want 60", e)
	}
	c2 := dialRaw(t, b.addr, packet.V5)
	ack = c2.connect(&packet.Connect{ClientID: "long-1", CleanStart: true, Properties: packet.Properties{SessionExpiryInterval: u32(3600)}})
	if ack.Properties.SessionExpiryInterval != nil {
		t.Errorf("a session of no policy was capped: %v", *ack.Properties.SessionExpiryInterval)
	}
	login(t, b, packet.V311, "short-311", "", 1)
	if i, _ := b.srv.Session("short-311"); i.ExpiryInterval != 60 {
		t.Errorf("3.1.1 persistent session expiry %d, want 60", i.ExpiryInterval)
	}
}

// TestQueuePolicyAfterRestart: recovered sessions take their policy from
// their stored identity and subscriptions, with their queues in its
// account, before the first client connects.
func TestQueuePolicyAfterRestart(t *testing.T) {
	st := memstore.New()
	b := startBroker(t, policyConfig(), withStore(st))
	offlineSubscriber(t, b, "dev9", "fw/dev9/+", 1)
	offlineSubscriber(t, b, "sensor-1", "s", 1)
	pub := dialRaw(t, b.addr, packet.V5)
	pub.connect(&packet.Connect{ClientID: "pub", CleanStart: true})
	publishQoS1(t, pub, "fw/dev9/img", payloads(5)...)
	publishQoS1(t, pub, "s", "a")
	b.stop()

	b = startBroker(t, policyConfig(), withStore(st))
	if got := sessionPolicy(t, b, "dev9"); got != "firmware" {
		t.Errorf("recovered dev9 has policy %q", got)
	}
	if p := policyStat(t, b, "firmware"); p.QueuedMessages != 3 {
		t.Errorf("firmware after restart: %+v", p)
	}
	if p := policyStat(t, b, "sensors"); p.QueuedMessages != 1 || len(p.Drops) != 0 {
		t.Errorf("sensors after restart: %+v (drop counters start again at a restart)", p)
	}
}
