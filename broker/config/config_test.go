package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatalf("Default() is invalid: %v", err)
	}
}

func TestParseOverridesDefaults(t *testing.T) {
	c, err := Parse([]byte(`
queues:
  maxQueuedMessages: 5
  overflowPolicy: RejectPublish
sessions:
  maxSessionExpiry: 48h
  defaultSessionExpiry: 3600
durability:
  mode: interval
  interval: 10ms
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Queues.MaxQueuedMessages != 5 || c.Queues.OverflowPolicy != OverflowRejectPublish {
		t.Errorf("queues = %+v", c.Queues)
	}
	if c.Queues.MaxQueuedBytes != Default().Queues.MaxQueuedBytes {
		t.Errorf("unset field lost its default: %d", c.Queues.MaxQueuedBytes)
	}
	if c.Sessions.MaxSessionExpiry.D() != 48*time.Hour || c.Sessions.DefaultSessionExpiry.D() != time.Hour {
		t.Errorf("sessions = %+v", c.Sessions)
	}
	if c.Durability.Interval.D() != 10*time.Millisecond {
		t.Errorf("interval = %s", c.Durability.Interval)
	}
}

func TestParseEmpty(t *testing.T) {
	c, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if Diff(Default(), c) != nil {
		t.Errorf("empty file differs from defaults: %v", Diff(Default(), c))
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	cases := map[string]struct {
		yaml  string
		field string
	}{
		"unknown field":       {"queues:\n  maxQueuedMesages: 3\n", "maxQueuedMesages"},
		"bad policy":          {"queues:\n  overflowPolicy: DropAll\n", "queues.overflowPolicy"},
		"zero queue":          {"queues:\n  maxQueuedMessages: 0\n", "queues.maxQueuedMessages"},
		"bad durability":      {"durability:\n  mode: fast\n", "durability.mode"},
		"bad duration":        {"sessions:\n  maxSessionExpiry: forever\n", "line 2"},
		"default above max":   {"sessions:\n  maxSessionExpiry: 1h\n  defaultSessionExpiry: 2h\n", "sessions.defaultSessionExpiry"},
		"no listeners":        {"listeners:\n  mqtt:\n    address: \"\"\n", "listeners"},
		"bad address":         {"listeners:\n  mqtt:\n    address: nowhere\n", "listeners.mqtt.address"},
		"tls without cert":    {"listeners:\n  tls:\n    address: 127.0.0.1:8883\n", "listeners.tls.certFile"},
		"small packets":       {"limits:\n  maxPacketSize: 10\n", "limits.maxPacketSize"},
		"short client ids":    {"limits:\n  maxClientIDLength: 5\n", "limits.maxClientIDLength"},
		"bad acl access":      {"auth:\n  acl:\n  - {user: a, topic: x, access: all}\n", "auth.acl[0].access"},
		"bad log level":       {"logLevel: loud\n", "logLevel"},
		"bad procs":           {"procs: 2\n", "procs"},
		"fractional expiry":   {"sessions:\n  maxSessionExpiry: 1500ms\n  defaultSessionExpiry: 1s\n", "sessions.maxSessionExpiry"},
		"interval mode zero":  {"durability:\n  mode: interval\n  interval: 0s\n", "durability.interval"},
		"many top queues":     {"admin:\n  metricsTopQueues: 101\n", "admin.metricsTopQueues"},
		"negative top queues": {"admin:\n  metricsTopQueues: -1\n", "admin.metricsTopQueues"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("expected an error")
			}
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
		})
	}
}

func TestValidateReturnsFieldErrors(t *testing.T) {
	c := Default()
	c.Queues.MaxQueuedBytes = 0
	c.Limits.MaxInflight = 0
	err := c.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("want *FieldError, got %T", err)
	}
	if n := strings.Count(err.Error(), "config: "); n != 2 {
		t.Errorf("want both problems reported, got %q", err)
	}
}

// reparse writes c as a file and parses it back.
func reparse(t *testing.T, c *Config) (*Config, []byte) {
	t.Helper()
	b, err := Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatalf("re-parse: %v\n%s", err, b)
	}
	return got, b
}

func TestMarshalRoundTrip(t *testing.T) {
	c := Default()
	yes := true
	c.Auth.AllowAnonymous = &yes
	c.Auth.ACL = []ACLRule{{User: "alice", Topic: "sensors/%u/#", Access: "readwrite"}}
	c.ConfigGeneration = 7
	got, b := reparse(t, c)
	if d := Diff(c, got); d != nil {
		t.Errorf("round trip changed %v\n%s", d, b)
	}
}

func TestLoad(t *testing.T) {
	p := filepath.Join(t.TempDir(), "bollard.yaml")
	if err := os.WriteFile(p, []byte("logLevel: debug\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(p)
	if err != nil || c.LogLevel != "debug" {
		t.Fatalf("Load = %v, %v", c, err)
	}
	if err := os.WriteFile(p, []byte("logLevel: loud\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "logLevel") {
		t.Errorf("Load error %q should name the file and the field", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestDiffClassifiesChanges(t *testing.T) {
	cases := map[string]struct {
		mutate  func(*Config)
		restart bool
		field   string
	}{
		"queue limit":    {func(c *Config) { c.Queues.MaxQueuedMessages = 1 }, false, "queues.maxQueuedMessages"},
		"overflow":       {func(c *Config) { c.Queues.OverflowPolicy = OverflowDropNewest }, false, "queues.overflowPolicy"},
		"expiry cap":     {func(c *Config) { c.Sessions.MaxSessionExpiry = Duration(time.Hour) }, false, "sessions.maxSessionExpiry"},
		"acl":            {func(c *Config) { c.Auth.ACL = []ACLRule{{Topic: "#", Access: "deny"}} }, false, "auth.acl"},
		"log level":      {func(c *Config) { c.LogLevel = "debug" }, false, "logLevel"},
		"procs":          {func(c *Config) { c.Procs = ProcsAll }, false, "procs"},
		"generation":     {func(c *Config) { c.ConfigGeneration = 3 }, false, "configGeneration"},
		"listener":       {func(c *Config) { c.Listeners.MQTT.Address = "127.0.0.1:1884" }, true, "listeners.mqtt.address"},
		"durability":     {func(c *Config) { c.Durability.Mode = DurabilityNone }, true, "durability.mode"},
		"data dir":       {func(c *Config) { c.DataDir = "/data" }, true, "dataDir"},
		"websocket path": {func(c *Config) { c.Listeners.WebSocket.Path = "/ws" }, true, "listeners.websocket.path"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			old := Default()
			n := old.Clone()
			tc.mutate(n)
			d := Diff(old, n)
			if len(d) != 1 || d[0].Field != tc.field {
				t.Fatalf("Diff = %v, want only %s", d, tc.field)
			}
			if NeedsRestart(d) != tc.restart {
				t.Errorf("NeedsRestart = %v, want %v", !tc.restart, tc.restart)
			}
			if (RestartHash(old) != RestartHash(n)) != tc.restart {
				t.Errorf("RestartHash changed = %v, want %v", !tc.restart, tc.restart)
			}
		})
	}
}

func TestEveryFieldIsClassified(t *testing.T) {
	seen := map[string]bool{}
	for _, f := range Fields() {
		if f.Class != Hot && f.Class != Restart {
			t.Errorf("%s has reload class %q", f.Field, f.Class)
		}
		if seen[f.Field] {
			t.Errorf("%s listed twice", f.Field)
		}
		seen[f.Field] = true
	}
	if !seen["queues.maxQueuedMessages"] || !seen["listeners.tls.certFile"] {
		t.Errorf("Fields() misses known fields: %v", Fields())
	}
}

func TestAnonymousAllowed(t *testing.T) {
	yes, no := true, false
	cases := map[string]struct {
		mutate func(*Config)
		want   bool
	}{
		"loopback default":  {func(*Config) {}, true},
		"localhost":         {func(c *Config) { c.Listeners.MQTT.Address = "localhost:1883" }, true},
		"all interfaces":    {func(c *Config) { c.Listeners.MQTT.Address = ":1883" }, false},
		"explicit true":     {func(c *Config) { c.Listeners.MQTT.Address = ":1883"; c.Auth.AllowAnonymous = &yes }, true},
		"explicit false":    {func(c *Config) { c.Auth.AllowAnonymous = &no }, false},
		"users configured":  {func(c *Config) { c.Auth.UsersFile = "/etc/users" }, false},
		"non-loopback ws":   {func(c *Config) { c.Listeners.WebSocket.Address = "0.0.0.0:8081" }, false},
		"ipv6 loopback tls": {func(c *Config) { c.Listeners.TLS.Address = "[::1]:8883" }, true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			c := Default()
			tc.mutate(c)
			if got := c.AnonymousAllowed(); got != tc.want {
				t.Errorf("AnonymousAllowed = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestCloneIsDeep(t *testing.T) {
	c := Default()
	yes, early := true, true
	c.Auth.AllowAnonymous = &yes
	c.Durability.EarlyDelivery = &early
	c.Auth.ACL = []ACLRule{{Topic: "a", Access: "deny"}}
	n := c.Clone()
	*n.Auth.AllowAnonymous = false
	*n.Durability.EarlyDelivery = false
	n.Auth.ACL[0].Topic = "b"
	if !*c.Auth.AllowAnonymous || !*c.Durability.EarlyDelivery || c.Auth.ACL[0].Topic != "a" {
		t.Error("Clone shares memory with the original")
	}
}

// durability.earlyDelivery is on unless set to false, and survives a
// round trip through the file.
func TestEarlyDeliveryDefault(t *testing.T) {
	c := Default()
	if !c.Durability.Early() {
		t.Fatal("early delivery off by default")
	}
	off := false
	c.Durability.EarlyDelivery = &off
	if got, b := reparse(t, c); got.Durability.Early() {
		t.Fatalf("earlyDelivery: false did not round-trip:\n%s", b)
	}
	if got, err := Parse([]byte("durability:\n  earlyDelivery: true\n")); err != nil || !got.Durability.Early() {
		t.Fatalf("earlyDelivery: true: %v", err)
	}
}

func TestEmptyACLRoundTrips(t *testing.T) {
	c := Default()
	c.Auth.ACL = []ACLRule{}
	got, b := reparse(t, c)
	if strings.Contains(string(b), "acl") {
		t.Errorf("empty ACL rendered:\n%s", b)
	}
	if d := Diff(c, got); d != nil {
		t.Errorf("nil and empty ACL differ: %v", d)
	}
	if RestartHash(c) != RestartHash(got) {
		t.Error("restart hash differs")
	}
}

func TestClusterValidation(t *testing.T) {
	good := func() *Config {
		c := Default()
		c.Cluster = Cluster{MemberID: "b-0", Bind: ":7946", SecretFile: "/s", Bootstrap: true, Members: []ClusterMember{
			{ID: "b-0", RaftAddress: "b-0.h:7946", ClientAddress: "b-0.h:1883"},
			{ID: "b-1", RaftAddress: "b-1.h:7946", ClientAddress: "b-1.h:1883"},
			{ID: "b-2", RaftAddress: "b-2.h:7946"},
		}}
		return c
	}
	if err := good().Validate(); err != nil {
		t.Fatalf("a good cluster config refused: %v", err)
	}
	cases := map[string]struct {
		mut   func(c *Config)
		field string
	}{
		"fields without member": {func(c *Config) { c.Cluster.MemberID = ""; c.Cluster.Members = nil }, "cluster.memberID"},
		"bad member id":         {func(c *Config) { c.Cluster.MemberID = "B_0" }, "cluster.memberID"},
		"no bind":               {func(c *Config) { c.Cluster.Bind = "" }, "cluster.bind"},
		"no secret":             {func(c *Config) { c.Cluster.SecretFile = "" }, "cluster.secretFile"},
		"durability none":       {func(c *Config) { c.Durability.Mode = DurabilityNone }, "durability.mode"},
		"self missing":          {func(c *Config) { c.Cluster.MemberID = "b-9" }, "cluster.members"},
		"duplicate member":      {func(c *Config) { c.Cluster.Members[1].ID = "b-0" }, "cluster.members[1].id"},
		"member without host":   {func(c *Config) { c.Cluster.Members[2].RaftAddress = ":7946" }, "cluster.members[2].raftAddress"},
		"bad client address":    {func(c *Config) { c.Cluster.Members[1].ClientAddress = "nope" }, "cluster.members[1].clientAddress"},
		"too many members":      {func(c *Config) { c.Cluster.Members = append(c.Cluster.Members, make([]ClusterMember, 6)...) }, "cluster.members"},
		"lease over heartbeat":  {func(c *Config) { c.Cluster.LeaderLeaseTimeout = Duration(2 * time.Second) }, "cluster.leaderLeaseTimeout"},
		"lease over default":    {func(c *Config) { c.Cluster.LeaderLeaseTimeout = Duration(DefaultHeartbeatTimeout + time.Millisecond) }, "cluster.leaderLeaseTimeout"},
		"lease over short hb": {func(c *Config) {
			c.Cluster.HeartbeatTimeout, c.Cluster.LeaderLeaseTimeout = Duration(100*time.Millisecond), Duration(200*time.Millisecond)
		}, "cluster.leaderLeaseTimeout"},
		"heartbeat too short":    {func(c *Config) { c.Cluster.HeartbeatTimeout = Duration(time.Millisecond) }, "cluster.heartbeatTimeout"},
		"dial bad member ID":     {func(c *Config) { c.Cluster.DialAddresses = map[string]string{"ZZ!": "h:1"} }, "cluster.dialAddresses[ZZ!]"},
		"dial bad address":       {func(c *Config) { c.Cluster.DialAddresses = map[string]string{"b-1": "h"} }, "cluster.dialAddresses[b-1]"},
		"negative snapshotEvery": {func(c *Config) { c.Cluster.SnapshotEvery = -1 }, "cluster.snapshotEvery"},
		"negative trailingLogs":  {func(c *Config) { c.Cluster.TrailingLogs = -1 }, "cluster.trailingLogs"},
		"huge trailingLogs":      {func(c *Config) { c.Cluster.TrailingLogs = 20_000_000 }, "cluster.trailingLogs"},
		"negative hold":          {func(c *Config) { c.Cluster.HandoverHoldFor = Duration(-time.Second) }, "cluster.handoverHoldFor"},
		"hold too short":         {func(c *Config) { c.Cluster.HandoverHoldFor = Duration(time.Millisecond) }, "cluster.handoverHoldFor"},
		"hold too long":          {func(c *Config) { c.Cluster.HandoverHoldFor = Duration(2 * time.Minute) }, "cluster.handoverHoldFor"},
		"negative maxHeld":       {func(c *Config) { c.Cluster.HandoverMaxHeld = -1 }, "cluster.handoverMaxHeld"},
		"huge maxHeld":           {func(c *Config) { c.Cluster.HandoverMaxHeld = 1 << 30 }, "cluster.handoverMaxHeld"},
	}
	for name, tc := range cases {
		c := good()
		tc.mut(c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field+":") {
			t.Errorf("%s: err = %v, want one naming %s", name, err, tc.field)
		}
	}
}

// The cluster timeouts in effect: zero fields take the defaults, and an
// unset lease never exceeds the heartbeat timeout (Raft refuses that).
func TestClusterTimeouts(t *testing.T) {
	for _, tc := range []struct {
		in                  Cluster
		heartbeat, election time.Duration
		lease               time.Duration
	}{
		{Cluster{}, DefaultHeartbeatTimeout, DefaultElectionTimeout, DefaultLeaderLeaseTimeout},
		{Cluster{HeartbeatTimeout: Duration(2 * time.Second)}, 2 * time.Second, DefaultElectionTimeout, DefaultLeaderLeaseTimeout},
		{Cluster{HeartbeatTimeout: Duration(200 * time.Millisecond)}, 200 * time.Millisecond, DefaultElectionTimeout, 200 * time.Millisecond},
		{Cluster{HeartbeatTimeout: Duration(time.Second), ElectionTimeout: Duration(3 * time.Second), LeaderLeaseTimeout: Duration(100 * time.Millisecond)},
			time.Second, 3 * time.Second, 100 * time.Millisecond},
	} {
		h, e, l := tc.in.Timeouts()
		if h != tc.heartbeat || e != tc.election || l != tc.lease {
			t.Errorf("%+v: Timeouts() = %s %s %s, want %s %s %s", tc.in, h, e, l, tc.heartbeat, tc.election, tc.lease)
		}
		if l > h {
			t.Errorf("%+v: lease %s over the heartbeat timeout %s", tc.in, l, h)
		}
	}
	// A short heartbeat with the lease unset is valid: the lease follows it.
	c := Default()
	c.Cluster = Cluster{MemberID: "b-0", Bind: ":7946", SecretFile: "/s", HeartbeatTimeout: Duration(100 * time.Millisecond),
		Members: []ClusterMember{{ID: "b-0", RaftAddress: "b-0.h:7946"}}}
	if err := c.Validate(); err != nil {
		t.Errorf("heartbeat 100ms without a lease refused: %v", err)
	}
}

// A field at its zero value does not enter the restart hash: adding a
// field to a later version rolls no broker that does not set it.
func TestRestartHashIgnoresUnsetFields(t *testing.T) {
	a := Default()
	b := Default()
	b.Cluster.Members = []ClusterMember{}
	if RestartHash(a) != RestartHash(b) {
		t.Fatal("an empty list changed the restart hash")
	}
	b.Cluster.MemberID = "b-0"
	if RestartHash(a) == RestartHash(b) {
		t.Fatal("a set restart field left the restart hash alone")
	}
	out, err := yaml.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "cluster") {
		t.Fatalf("a single node's rendered config mentions the cluster:\n%s", out)
	}
}

func TestStoreMemTableBytes(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ limit, want int64 }{
		{0, 4 * mib}, {16 * mib, 4 * mib}, {255 * mib, 4 * mib}, {256 * mib, 8 * mib},
		{409 * mib, 8 * mib}, {512 * mib, 16 * mib}, {819 * mib, 16 * mib}, {1 << 30, 32 * mib},
		{2 << 30, 64 * mib}, {64 << 30, 64 * mib}, {-1, 4 * mib},
	} {
		if got := (Limits{MemoryLimit: tc.limit}).StoreMemTableBytes(); got != tc.want {
			t.Errorf("memoryLimit %d MiB: memtables of %d MiB, want %d MiB", tc.limit/mib, got/mib, tc.want/mib)
		}
	}
}
