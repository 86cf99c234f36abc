package monitoring_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/host"
	"github.com/bollard-io/bollard/broker/replica"
	"github.com/bollard-io/bollard/test/poll"
	"github.com/bollard-io/bollard/test/ports"
)

// startCluster runs a two-member cluster in this process, each member as
// `bollard` runs one (the replicated store, an engine per leadership term,
// the host with its admin endpoint), and returns both members' admin
// endpoints once the leader reports its follower's lag: between them they
// export every replication series, the leader's per-follower ones too.
func startCluster(t *testing.T) []*broker {
	t.Helper()
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "token")
	secretFile := filepath.Join(dir, "secret")
	for f, v := range map[string]string{tokenFile: token, secretFile: "monitoring-test-cluster-secret-0123456789"} {
		if err := os.WriteFile(f, []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	addrs, err := ports.Free(2)
	if err != nil {
		t.Fatal(err)
	}
	var members []config.ClusterMember
	for i, a := range addrs {
		members = append(members, config.ClusterMember{ID: fmt.Sprintf("m%d", i), RaftAddress: a, ClientAddress: fmt.Sprintf("m%d.example:1883", i)})
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	var out []*broker
	for i, m := range members {
		cfg := config.Default()
		cfg.DataDir = filepath.Join(dir, m.ID)
		cfg.Listeners.MQTT.Address = "127.0.0.1:0"
		cfg.Admin.Address = "127.0.0.1:0"
		cfg.Admin.TokenFile = tokenFile
		cfg.Cluster = config.Cluster{MemberID: m.ID, Bind: m.RaftAddress, Members: members, Bootstrap: true, SecretFile: secretFile}
		ccfg, err := replica.ClusterConfig(cfg, log)
		if err != nil {
			t.Fatal(err)
		}
		node, err := cluster.Open(ccfg)
		if err != nil {
			t.Fatalf("member %d: %v", i, err)
		}
		newTerm := func(c *config.Config) (*engine.Server, error) {
			return engine.New(c, node.Store(), engine.WithLogger(log))
		}
		eng, err := replica.New(cfg, node, log, newTerm)
		if err != nil {
			t.Fatal(err)
		}
		r := host.NewRunner(eng, host.RunOptions{Config: cfg, Logger: log, Version: "v0.0.0-monitoring", Store: node, Role: eng, Cluster: node})
		run(t, r)
		// A member's admin endpoint is up before it is ready (only the
		// leader becomes ready).
		if err := poll.Until(context.Background(), 30*time.Second, 20*time.Millisecond, func(context.Context) error {
			if r.AdminAddr() == "" {
				return fmt.Errorf("no admin endpoint yet")
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		out = append(out, &broker{admin: r.AdminAddr()})
	}
	return out
}

// clusterExported scrapes both members of startCluster's cluster, once the
// leader exports its follower's lag, and returns the union of their series.
func clusterExported(t *testing.T) map[string]bool {
	t.Helper()
	ms := startCluster(t)
	names := map[string]bool{}
	err := poll.Until(context.Background(), 30*time.Second, 100*time.Millisecond, func(context.Context) error {
		clear(names)
		lag := false
		for _, m := range ms {
			body := m.get(t, "/metrics")
			lag = lag || strings.Contains(body, "bollard_cluster_follower_lag_entries{")
			maps.Copy(names, seriesNames(body))
		}
		if !lag {
			return fmt.Errorf("no member exports a follower's lag yet")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// allExported is what a single broker and the members of a cluster export.
func allExported(t *testing.T) map[string]bool {
	t.Helper()
	names := startBroker(t).exported(t)
	maps.Copy(names, clusterExported(t))
	for _, want := range []string{"bollard_cluster_role", "bollard_cluster_follower_last_contact_seconds", "bollard_cluster_serving"} {
		if !names[want] {
			t.Fatalf("no member exports %s", want)
		}
	}
	return names
}
