package main

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/replica"
)

// The cluster section reaches the member's configuration: timing, log
// retention, dial addresses.
func TestClusterConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("k", 40)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &config.Config{DataDir: dir, Cluster: config.Cluster{
		MemberID: "b-0", Bind: "127.0.0.1:7000", SecretFile: secret, Bootstrap: true,
		HeartbeatTimeout: config.Duration(700 * time.Millisecond), ElectionTimeout: config.Duration(800 * time.Millisecond),
		LeaderLeaseTimeout: config.Duration(300 * time.Millisecond), SnapshotEvery: 1000, TrailingLogs: 200,
		Members: []config.ClusterMember{
			{ID: "b-0", RaftAddress: "127.0.0.1:7000", ClientAddress: "127.0.0.1:1883"},
			{ID: "b-1", RaftAddress: "127.0.0.1:7001", ClientAddress: "127.0.0.1:1884"},
		},
		DialAddresses: map[string]string{"b-1": "127.0.0.1:9001"},
	}}
	c, err := replica.ClusterConfig(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	tm := c.Timing
	if tm.Heartbeat != 700*time.Millisecond || tm.Election != 800*time.Millisecond || tm.LeaderLease != 300*time.Millisecond ||
		tm.SnapshotEvery != 1000 || tm.TrailingLogs != 200 {
		t.Fatalf("timing %+v", tm)
	}
	if string(c.Secret) != strings.Repeat("k", 40) || c.ID != "b-0" || !c.Bootstrap || len(c.Members) != 2 || c.Dir != filepath.Join(dir, "cluster") {
		t.Fatalf("config %+v", c)
	}
	if got := c.DialIDs["b-1"]; got != "127.0.0.1:9001" || len(c.DialIDs) != 1 {
		t.Fatalf("dial addresses %v", c.DialIDs)
	}
}
