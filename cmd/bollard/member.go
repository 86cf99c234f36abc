package main

import (
	"log/slog"
	"time"

	"github.com/bollard-io/bollard/broker/cluster"
	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/engine"
	"github.com/bollard-io/bollard/broker/host"
	"github.com/bollard-io/bollard/broker/replica"
)

// serveMember runs the broker as a member of a replicated cluster: the
// replicated store under <dataDir>/cluster, an engine per leadership term
// (broker/replica), the member as the host's Role.
func serveMember(cfg *config.Config, fl *flags, level *slog.LevelVar, log *slog.Logger) int {
	ccfg, err := replica.ClusterConfig(cfg, log)
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
	stopped := make(chan struct{})
	go func() {
		<-node.Done()
		if err := node.Err(); err != nil {
			log.Error("cluster member stopped: its store cannot follow the log", "err", err)
			close(stopped)
		}
	}()
	return runHost(eng, host.RunOptions{
		AdaptProcs: true,
		Config:     cfg, ConfigFile: fl.configFile, Overrides: fl.apply, LevelVar: level,
		Logger: log, Version: version, Store: node, Role: eng, Cluster: clusterAdmin{Node: node, eng: eng},
	}, stopped)
}

// clusterAdmin is the member as the admin endpoint drives it, its
// leadership transfers made through the engine, which quiesces the term's
// engine first (replica.Engine.TransferLeadership), and its readiness
// handover the engine's (host.HandoverAdmin).
type clusterAdmin struct {
	*cluster.Node
	eng *replica.Engine
}

func (a clusterAdmin) TransferLeadership() error { return a.eng.TransferLeadership() }

func (a clusterAdmin) TransferLeadershipTo(id string) error { return a.eng.TransferLeadershipTo(id) }

func (a clusterAdmin) PrepareHandover(r replica.HandoverRole, ttl time.Duration) (time.Duration, error) {
	return a.eng.PrepareHandover(r, ttl)
}

func (a clusterAdmin) HandoverStatus() replica.HandoverStatus { return a.eng.HandoverStatus() }
