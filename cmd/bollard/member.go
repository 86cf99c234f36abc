package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/host"
	"github.com/bollard-io/bollard/broker/replica"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// serveMember runs the broker as a member of a replicated cluster: the
// replicated store under <dataDir>/cluster, an engine per leadership term
// (broker/replica), the member as the host's Role.
func serveMember(cfg *config.Config, fl *flags, level *slog.LevelVar, log *slog.Logger) int {
	ccfg, err := clusterConfig(cfg, log)
	if err != nil {
		log.Error("cannot start the cluster member", "err", err)
		return exitFailure
	}
	node, err := cluster.Open(ccfg)
	if err != nil {
		log.Error("cannot start the cluster member; not starting. The store is never reset automatically: "+
			"fix the cause, or move the data directory aside to start empty",
			"dataDir", dataDirForLog(cfg), "err", err)
		return exitFailure
	}
	newTerm := func(c *config.Config) (*engine.Server, error) {
		return engine.New(c, node.Store(), engine.WithLogger(log))
	}
	eng, err := replica.New(cfg, node, log.With("member", cfg.Cluster.MemberID), newTerm)
	if err != nil {
		log.Error("cannot create the server", "err", err)
		if cerr := node.Close(); cerr != nil {
			log.Error("closing the cluster member", "err", cerr)
		}
		return exitFailure
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	runner := host.NewRunner(eng, host.RunOptions{
		Config: cfg, ConfigFile: fl.configFile, Overrides: fl.apply, LevelVar: level,
		Logger: log, Version: version, Store: node, Role: node, Cluster: node,
	})
	go func() {
		select {
		case <-ctx.Done():
			stop() // a second signal kills the process the default way
		case <-node.Done():
			// The member stopped by itself (its store could not follow the
			// log): exit so that the supervisor restarts it.
			log.Error("cluster member stopped", "err", node.Err())
			runner.StartDrain()
		}
	}()
	stopHUP := onSIGHUP(runner.TriggerReload)
	defer stopHUP()
	if err := runner.Run(ctx); err != nil {
		log.Error("bollard stopped with an error", "err", err)
		return exitFailure
	}
	if err := node.Err(); err != nil {
		return exitFailure
	}
	return exitOK
}

// clusterConfig turns the validated config into the member's.
func clusterConfig(cfg *config.Config, log *slog.Logger) (cluster.Config, error) {
	cl := cfg.Cluster
	secret, err := os.ReadFile(cl.SecretFile)
	if err != nil {
		return cluster.Config{}, fmt.Errorf("cluster.secretFile: %w", err)
	}
	secret = bytes.TrimSpace(secret)
	c := cluster.Config{
		ID: cl.MemberID, Dir: filepath.Join(cfg.DataDir, "cluster"), Bind: cl.Bind,
		Bootstrap: cl.Bootstrap, Secret: secret, Logger: log,
		Store: pebblestore.Options{Logger: log},
		Timing: cluster.Timing{
			Heartbeat: cl.HeartbeatTimeout.D(), Election: cl.ElectionTimeout.D(), LeaderLease: cl.LeaderLeaseTimeout.D(),
			SnapshotEvery: uint64(cl.SnapshotEvery), TrailingLogs: uint64(cl.TrailingLogs),
		},
	}
	dial := map[string]string{}
	for _, m := range cl.Members {
		c.Members = append(c.Members, cluster.Member{ID: m.ID, RaftAddress: m.RaftAddress, ClientAddress: m.ClientAddress})
		if a, ok := cl.DialAddresses[m.ID]; ok {
			dial[m.RaftAddress] = a
		}
	}
	if len(dial) > 0 {
		c.DialAddress = func(a string) string {
			if d, ok := dial[a]; ok {
				return d
			}
			return a
		}
	}
	return c, nil
}
