package cluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/store"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// Adoption turns a single node's store into a cluster's first state (the
// operator's replicas 1 -> 3 and 1 -> 5). A member started with Bootstrap
// whose directory holds no Raft state, and whose Config.AdoptDir holds a
// single node's store, adopts that store:
//
//  1. it writes the ADOPTING marker in its directory: from now on, until
//     the marker is renamed, the cluster state is provisional and the
//     single node's store is the only truth (a restart throws the
//     provisional state away and starts over);
//  2. it copies the single store into store/ (a Pebble checkpoint: hard
//     links), records applied index 1 in it, and takes a Raft snapshot of
//     it at index 1, term 1, whose configuration is this member alone;
//  3. it sets the current term to 1, so Raft finds existing state;
//  4. it renames ADOPTING to ADOPTED (the commit point, one rename);
//  5. it removes the single store's files from AdoptDir, then renames
//     ADOPTED to ADOPTION-COMPLETE (a single store found after that is
//     not the adopted one, and is refused, never removed).
//
// The log holds no entry: the adopted data is only in the snapshot, so
// every member added later installs the snapshot (a member replaying the
// log from index 1 would miss it). A kill at any point leaves either
// ADOPTING (start over from the intact single store) or ADOPTED (finish
// removing the single store's leftovers): never both halves in use.

// Marker files in the member's directory.
const (
	adoptingMarker = "ADOPTING"
	adoptedMarker  = "ADOPTED"
	completeMarker = "ADOPTION-COMPLETE"
)

// ErrWrongStore is returned by Open when the directories hold a store the
// member must not use as it is: a single node's store beside a cluster
// member's state, or a single node's store on a member that does not
// bootstrap (it would join as an empty member, leaving the store behind).
var ErrWrongStore = errors.New("cluster: wrong store for this member")

// adoptTerm and adoptIndex are the term and index of the adopted
// snapshot: the first entry a bootstrap would have written.
const (
	adoptTerm  = 1
	adoptIndex = 1
)

// keyCurrentTerm is hashicorp/raft's stable-store key of the current term
// (unexported there); setting it is what BootstrapCluster does too.
var keyCurrentTerm = []byte("CurrentTerm")

// adoptCrash, when set (tests), is called at each step of an adoption; an
// error stops the adoption there, as a kill would.
var adoptCrash func(step string) error

func crashAt(step string) error {
	if adoptCrash != nil {
		return adoptCrash(step)
	}
	return nil
}

// HasClusterState reports whether dir (a member's directory,
// <dataDir>/cluster) holds a cluster member's state or an adoption under
// way: a single node must not start on its parent.
func HasClusterState(dir string) bool {
	for _, p := range []string{"raft", "store", adoptingMarker, adoptedMarker, completeMarker} {
		if exists(filepath.Join(dir, p)) {
			return true
		}
	}
	return false
}

// settleAdoption runs before the member opens its state: it finishes an
// adoption (ADOPTED: removes the single store's leftovers), starts one over
// (ADOPTING), starts one (Bootstrap, no Raft state, a single store), or
// refuses a combination it cannot use.
func (n *Node) settleAdoption(hlog hclog.Logger) error {
	cfg := n.cfg
	if cfg.AdoptDir == "" {
		return nil
	}
	if exists(filepath.Join(cfg.Dir, adoptedMarker)) {
		return n.removeSingle()
	}
	// From here, a single store beside Raft state (ADOPTION-COMPLETE
	// included) is refused below.
	single, err := pebblestore.Exists(cfg.AdoptDir)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	adopting := exists(filepath.Join(cfg.Dir, adoptingMarker))
	switch {
	case adopting && !single:
		return fmt.Errorf("%w: %s says an adoption of the single node's store in %s was under way, but that store is gone; "+
			"restore it, or remove %s to start as an empty member", ErrWrongStore, filepath.Join(cfg.Dir, adoptingMarker), cfg.AdoptDir, cfg.Dir)
	case !single:
		return nil
	case adopting:
		n.log.Warn("an earlier adoption of the single node's store was interrupted; starting it over from that store", "store", cfg.AdoptDir)
	default:
		has, err := n.hasRaftState(filepath.Join(cfg.Dir, "raft"), hlog)
		if err != nil {
			return err
		}
		if has {
			return fmt.Errorf("%w: %s holds a single node's store and %s a cluster member's state; the broker will not choose: "+
				"move one of them aside (the single node's store: its files in %s, not the cluster directory)",
				ErrWrongStore, cfg.AdoptDir, cfg.Dir, cfg.AdoptDir)
		}
	}
	if !cfg.Bootstrap {
		return fmt.Errorf("%w: %s holds a single node's store, and this member does not bootstrap, so it would join a cluster empty and leave that store behind; "+
			"start it with cluster.bootstrap (--cluster-bootstrap) and itself as the only member to adopt the store as the cluster's first state, "+
			"or move the store's files aside", ErrWrongStore, cfg.AdoptDir)
	}
	if len(cfg.Members) != 1 {
		return fmt.Errorf("%w: %s holds a single node's store to adopt, but %d members are listed: a member adopting a store forms a cluster of itself alone "+
			"(other members bootstrapping the same list would form one without the store); list only this member, and add the others through the admin API once it leads",
			ErrWrongStore, cfg.AdoptDir, len(cfg.Members))
	}
	return n.adopt()
}

// hasRaftState reports whether raftDir holds a log, a term or a snapshot.
func (n *Node) hasRaftState(raftDir string, hlog hclog.Logger) (bool, error) {
	if !exists(raftDir) {
		return false, nil
	}
	logs, err := openLogStore(raftDir, n.log)
	if err != nil {
		return false, err
	}
	defer logs.Close()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog)
	if err != nil {
		return false, fmt.Errorf("cluster: open the snapshots: %w", err)
	}
	has, err := raft.HasExistingState(logs, logs, snaps)
	if err != nil {
		return false, fmt.Errorf("cluster: %w", err)
	}
	return has, nil
}

// adopt makes the single node's store this member's first state (see the
// steps above).
func (n *Node) adopt() error {
	cfg := n.cfg
	t0 := time.Now()
	n.log.Info("adopting the single node's store as the cluster's first state", "store", cfg.AdoptDir, "dir", cfg.Dir)
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	tmp := filepath.Join(cfg.Dir, adoptingMarker+".tmp")
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	if err := writeFile(tmp, strings.NewReader(cfg.AdoptDir+"\n")); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(cfg.Dir, adoptingMarker)); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	if err := syncDir(cfg.Dir); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	if err := crashAt("marked"); err != nil {
		return err
	}
	// Everything but the marker is provisional: an earlier attempt's.
	for _, p := range []string{"raft", "store", "store.adopt", "store.incoming", "store.old", "checkpoints"} {
		if err := os.RemoveAll(filepath.Join(cfg.Dir, p)); err != nil {
			return fmt.Errorf("cluster: adopt: %w", err)
		}
	}
	stats, err := n.copySingle()
	if err != nil {
		return err
	}
	if err := n.snapshotAdopted(); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(cfg.Dir, adoptingMarker), filepath.Join(cfg.Dir, adoptedMarker)); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	if err := syncDir(cfg.Dir); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	n.log.Info("adopted the single node's store: this member is the cluster's only voter; members added later install its snapshot",
		"sessions", stats.Sessions, "messages", stats.Messages, "bytes", stats.Bytes, "retained", stats.Retained, "took", time.Since(t0).Round(time.Millisecond).String())
	if err := crashAt("committed"); err != nil {
		return err
	}
	return n.removeSingle()
}

// copySingle checkpoints the single store into store/ with applied index
// adoptIndex, and returns its statistics.
func (n *Node) copySingle() (store.Stats, error) {
	cfg := n.cfg
	single, err := pebblestore.Open(cfg.AdoptDir, pebblestore.Options{Durability: pebblestore.Sync, Logger: n.log})
	if err != nil {
		return store.Stats{}, fmt.Errorf("cluster: adopt: open the single node's store: %w", err)
	}
	if single.AppliedIndex() != 0 {
		_ = single.Close()
		return store.Stats{}, fmt.Errorf("%w: the store in %s was a cluster member's (applied index %d), not a single node's", ErrWrongStore, cfg.AdoptDir, single.AppliedIndex())
	}
	tmp := filepath.Join(cfg.Dir, "store.adopt")
	err = single.Checkpoint(tmp)
	if cerr := single.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return store.Stats{}, fmt.Errorf("cluster: adopt: copy the single node's store: %w", err)
	}
	if err := crashAt("copied"); err != nil {
		return store.Stats{}, err
	}
	st, err := pebblestore.Open(tmp, pebblestore.Options{Durability: pebblestore.Sync, Logger: n.log})
	if err != nil {
		return store.Stats{}, fmt.Errorf("cluster: adopt: open the copy: %w", err)
	}
	stats := st.Stats()
	err = st.ApplyReplicated(adoptIndex, &store.Batch{})
	if err == nil {
		err = st.Sync(bg)
	}
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return store.Stats{}, fmt.Errorf("cluster: adopt: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(cfg.Dir, "store")); err != nil {
		return store.Stats{}, fmt.Errorf("cluster: adopt: %w", err)
	}
	if err := syncDir(cfg.Dir); err != nil {
		return store.Stats{}, fmt.Errorf("cluster: adopt: %w", err)
	}
	return stats, crashAt("stored")
}

// snapshotAdopted writes the Raft snapshot of store/ (at adoptIndex,
// adoptTerm, this member the only voter) and the current term.
func (n *Node) snapshotAdopted() error {
	cfg := n.cfg
	raftDir := filepath.Join(cfg.Dir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	hlog := hclog.NewNullLogger()
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog)
	if err != nil {
		return fmt.Errorf("cluster: adopt: open the snapshots: %w", err)
	}
	self := raft.Configuration{Servers: []raft.Server{{Suffrage: raft.Voter, ID: raft.ServerID(cfg.ID), Address: raft.ServerAddress(cfg.Bind)}}}
	for _, m := range cfg.Members {
		if m.ID == cfg.ID {
			self.Servers[0].Address = raft.ServerAddress(m.RaftAddress)
		}
	}
	// The transport only encodes the legacy peer list (an address's bytes,
	// as the network transport does).
	_, trans := raft.NewInmemTransport(self.Servers[0].Address)
	defer trans.Close()
	sink, err := snaps.Create(raft.SnapshotVersionMax, adoptIndex, adoptTerm, self, adoptIndex, trans)
	if err != nil {
		return fmt.Errorf("cluster: adopt: create the snapshot: %w", err)
	}
	if err := (&checkpointOf{dir: filepath.Join(cfg.Dir, "store")}).persist(sink); err != nil {
		return fmt.Errorf("cluster: adopt: write the snapshot: %w", err)
	}
	if err := crashAt("snapshotted"); err != nil {
		return err
	}
	logs, err := openLogStore(raftDir, n.log)
	if err != nil {
		return err
	}
	err = logs.SetUint64(keyCurrentTerm, adoptTerm)
	if cerr := logs.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cluster: adopt: set the term: %w", err)
	}
	return crashAt("termed")
}

// checkpointOf snapshots a closed store directory: a checkpoint of it,
// streamed into a sink, then removed.
type checkpointOf struct{ dir string }

func (c *checkpointOf) persist(sink raft.SnapshotSink) error {
	st, err := pebblestore.Open(c.dir, pebblestore.Options{Durability: pebblestore.Interval})
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	ck := filepath.Join(filepath.Dir(c.dir), "checkpoints", "adopt")
	_ = os.RemoveAll(ck)
	if err := os.MkdirAll(filepath.Dir(ck), 0o700); err != nil {
		_ = st.Close()
		_ = sink.Cancel()
		return err
	}
	err = st.Checkpoint(ck)
	if cerr := st.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	defer os.RemoveAll(ck)
	return (&checkpoint{dir: ck}).Persist(sink)
}

// removeSingle removes what is left of the adopted single store and
// records that the adoption is complete.
func (n *Node) removeSingle() error {
	if err := pebblestore.Remove(n.cfg.AdoptDir); err != nil {
		return fmt.Errorf("cluster: remove the adopted single node's store: %w", err)
	}
	if err := crashAt("removed"); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(n.cfg.Dir, adoptedMarker), filepath.Join(n.cfg.Dir, completeMarker)); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	if err := syncDir(n.cfg.Dir); err != nil {
		return fmt.Errorf("cluster: adopt: %w", err)
	}
	return nil
}
