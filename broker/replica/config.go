package replica

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// ClusterConfig turns a validated broker configuration with a cluster
// section into the member's cluster.Config: its replicated store under
// <dataDir>/cluster, the secret read from cluster.secretFile, the timing.
func ClusterConfig(cfg *config.Config, log *slog.Logger) (cluster.Config, error) {
	cl := cfg.Cluster
	secret, err := os.ReadFile(cl.SecretFile)
	if err != nil {
		return cluster.Config{}, fmt.Errorf("cluster.secretFile: %w", err)
	}
	secret = bytes.TrimSpace(secret)
	heartbeat, election, lease := cl.Timeouts()
	c := cluster.Config{
		ID: cl.MemberID, Dir: filepath.Join(cfg.DataDir, "cluster"), AdoptDir: cfg.DataDir, Bind: cl.Bind,
		Bootstrap: cl.Bootstrap, Secret: secret, Logger: log,
		Store: pebblestore.Options{Logger: log, LargestWrite: int64(cfg.Limits.MaxPacketSize),
			MemTableSize: cfg.Limits.StoreMemTableBytes()},
		Timing: cluster.Timing{
			Heartbeat: heartbeat, Election: election, LeaderLease: lease,
			SnapshotEvery: uint64(cl.SnapshotEvery), TrailingLogs: uint64(cl.TrailingLogs),
		},
	}
	for _, m := range cl.Members {
		c.Members = append(c.Members, cluster.Member{ID: m.ID, RaftAddress: m.RaftAddress, ClientAddress: m.ClientAddress})
	}
	// By ID, also for members added at run time (cluster.Config.DialIDs).
	c.DialIDs = cl.DialAddresses
	return c, nil
}
