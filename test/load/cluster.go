package load

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ClusterOptions configure a replicated bollard: Members processes on
// loopback, each with its own data directory.
type ClusterOptions struct {
	Binary      string
	Dir         string
	Members     int // 3 or 5
	MaxInflight int
	// MaxQueuedMessages is every session's queue limit (DropOldest); 0:
	// 10,000,000 (BollardOptions).
	MaxQueuedMessages int
}

// cluster is a Target made of bollard cluster members; Addr is the
// leader's MQTT address once Start returned.
type cluster struct {
	members []*process
	admins  []string
	mqtts   []string
	leader  int
}

// NewBollardCluster returns a replicated bollard target (sync durability:
// every member's Raft log fsyncs each entry before it counts).
func NewBollardCluster(o ClusterOptions) (Target, error) {
	if o.Members < 1 {
		return nil, errors.New("load: a cluster needs members")
	}
	c := &cluster{leader: -1}
	var raft []string
	for range o.Members {
		var addrs [3]string
		for j := range addrs {
			a, err := freePort()
			if err != nil {
				return nil, err
			}
			addrs[j] = a
		}
		c.mqtts, c.admins, raft = append(c.mqtts, addrs[0]), append(c.admins, addrs[1]), append(raft, addrs[2])
	}
	secret := filepath.Join(o.Dir, "secret")
	if err := os.WriteFile(secret, []byte(strings.Repeat("s", 48)), 0o600); err != nil {
		return nil, fmt.Errorf("load: %w", err)
	}
	var members strings.Builder
	for i := range o.Members {
		fmt.Fprintf(&members, "    - id: m%d\n      raftAddress: %s\n      clientAddress: %s\n", i, raft[i], c.mqtts[i])
	}
	client := &http.Client{Timeout: time.Second}
	for i := range o.Members {
		dir := filepath.Join(o.Dir, fmt.Sprintf("m%d", i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		cfg := filepath.Join(dir, "bollard.yaml")
		body := bollardConfig(BollardOptions{Dir: dir, Durability: "sync", MaxInflight: o.MaxInflight, MaxQueuedMessages: o.MaxQueuedMessages}, c.mqtts[i], c.admins[i]) +
			fmt.Sprintf("cluster:\n  memberID: m%d\n  bind: %s\n  bootstrap: true\n  secretFile: %s\n  members:\n%s", i, raft[i], secret, members.String())
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			return nil, fmt.Errorf("load: %w", err)
		}
		admin := c.admins[i]
		c.members = append(c.members, &process{
			name: fmt.Sprintf("bollard-m%d", i), dir: dir, addr: c.mqtts[i], fsyncs: true,
			argv:  func() []string { return []string{o.Binary, "--config", cfg} },
			ready: func(context.Context) bool { return true }, // the cluster's readiness is the leader's
			heap: func(ctx context.Context) (int64, error) {
				return promGauge(ctx, client, "http://"+admin+"/metrics", "go_memstats_heap_inuse_bytes")
			},
		})
	}
	return c, nil
}

func (c *cluster) Name() string { return "bollard-cluster" }
func (c *cluster) Fsyncs() bool { return true }

// Addr is the leader's MQTT address.
func (c *cluster) Addr() string {
	if c.leader < 0 {
		return ""
	}
	return c.mqtts[c.leader]
}

// PID is the leader's process.
func (c *cluster) PID() int {
	if c.leader < 0 {
		return 0
	}
	return c.members[c.leader].PID()
}

// PIDs are every running member's processes.
func (c *cluster) PIDs() []int {
	var pids []int
	for _, m := range c.members {
		if pid := m.PID(); pid != 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

func (c *cluster) HeapInUse(ctx context.Context) (int64, error) {
	if c.leader < 0 {
		return 0, errors.ErrUnsupported
	}
	return c.members[c.leader].HeapInUse(ctx)
}

// Start launches every member and returns once one of them serves (its
// /readyz passes: only the leader's does).
func (c *cluster) Start(ctx context.Context) (time.Duration, error) {
	begin := time.Now()
	for _, m := range c.members {
		if _, err := m.Start(ctx); err != nil {
			return 0, err
		}
	}
	client := &http.Client{Timeout: time.Second}
	c.leader = -1
	err := pollUntil(ctx, nil, func(ctx context.Context) bool {
		for i, a := range c.admins {
			if httpOK(ctx, client, "http://"+a+"/readyz") {
				c.leader = i
				return true
			}
		}
		return false
	})
	if err != nil {
		return 0, fmt.Errorf("load: no cluster member became the leader: %w", err)
	}
	return time.Since(begin), nil
}

// Stop stops the followers, then the leader.
func (c *cluster) Stop(ctx context.Context) error {
	var errs []error
	for i, m := range c.members {
		if i != c.leader {
			errs = append(errs, m.Stop(ctx))
		}
	}
	if c.leader >= 0 {
		errs = append(errs, c.members[c.leader].Stop(ctx))
	}
	c.leader = -1
	return errors.Join(errs...)
}
