package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/raft"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
)

// Recovery from a lost quorum: when a majority of the voters is gone for
// good (their volumes lost), no leader can ever be elected again. Recover
// forces a new configuration (this member alone, or the listed survivors)
// into a stopped member's own state with Raft's RecoverCluster: the latest
// snapshot and every entry of the member's log are applied to its store, a
// snapshot carrying the new configuration is written, and the log is
// compacted. Nothing the member holds is lost; entries it never received
// are (docs/durability.md).
//
// Two ways in: Recover on a stopped member's directory (the `bollard
// cluster recover` subcommand), or RequestRecovery, which writes a request
// file that Open carries out once before Raft starts (for a member that
// runs leaderless in a pod: write the request, then delete the pod).

// RecoveryRequestFile is the request Open consumes, in the cluster
// directory.
const RecoveryRequestFile = "recover.json"

// maxRecoveryRequestBytes bounds the request file Open reads.
const maxRecoveryRequestBytes = 64 << 10

// RecoveryRequest is a recovery: the member it is meant for and the
// voters of the new configuration (this member among them).
type RecoveryRequest struct {
	MemberID string           `json:"memberID"`
	Members  []RecoveryMember `json:"members"`
	// Created is when the request was written (for the log).
	Created time.Time `json:"created"`
}

// RecoveryMember is one voter of the new configuration.
type RecoveryMember struct {
	ID          string `json:"id"`
	RaftAddress string `json:"raftAddress"`
}

// ErrRecoveryRefused is returned for a recovery that must not run.
var ErrRecoveryRefused = errors.New("cluster: recovery refused")

// Validate checks the request: a member ID, 1 to 7 voters with valid IDs and
// addresses, none twice, this member among them.
func (r RecoveryRequest) Validate() error {
	if r.MemberID == "" {
		return fmt.Errorf("%w: no member ID", ErrRecoveryRefused)
	}
	if len(r.Members) == 0 || len(r.Members) > config.MaxClusterMembers {
		return fmt.Errorf("%w: the new configuration needs 1 to %d members, it has %d", ErrRecoveryRefused, config.MaxClusterMembers, len(r.Members))
	}
	seen := map[string]bool{}
	self := false
	for _, m := range r.Members {
		if err := config.CheckClusterMember(config.ClusterMember{ID: m.ID, RaftAddress: m.RaftAddress}); err != nil {
			return fmt.Errorf("%w: member %q: %w", ErrRecoveryRefused, m.ID, err)
		}
		if seen[m.ID] {
			return fmt.Errorf("%w: member %q listed twice", ErrRecoveryRefused, m.ID)
		}
		seen[m.ID] = true
		self = self || m.ID == r.MemberID
	}
	if !self {
		return fmt.Errorf("%w: the new configuration does not include this member (%s)", ErrRecoveryRefused, r.MemberID)
	}
	return nil
}

func (r RecoveryRequest) configuration() raft.Configuration {
	var c raft.Configuration
	for _, m := range r.Members {
		c.Servers = append(c.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(m.ID), Address: raft.ServerAddress(m.RaftAddress)})
	}
	return c
}

// Inspection is what a stopped member's directory holds.
type Inspection struct {
	// LastLogIndex and LastLogTerm: the last entry the member holds (in
	// its log, or its latest snapshot when the log is compacted). Keep the
	// survivor with the highest (LastLogTerm, LastLogIndex).
	LastLogIndex  uint64 `json:"lastLogIndex"`
	LastLogTerm   uint64 `json:"lastLogTerm"`
	FirstLogIndex uint64 `json:"firstLogIndex"`
	CurrentTerm   uint64 `json:"currentTerm"`
	// AppliedIndex is the last entry the member's store applied.
	AppliedIndex      uint64 `json:"appliedIndex"`
	LastSnapshotIndex uint64 `json:"lastSnapshotIndex"`
	// Members is the latest configuration the member holds (committed or
	// not).
	Members []RecoveryMember `json:"members"`
	// PendingRequest is a recovery request not yet carried out.
	PendingRequest *RecoveryRequest `json:"pendingRequest,omitempty"`
}

// RecoveryResult is what a recovery did.
type RecoveryResult struct {
	Before Inspection `json:"before"`
	After  Inspection `json:"after"`
}

// Inspect reads a stopped member's directory (the member directory:
// <dataDir>/cluster). It fails on a running member's (its log is locked).
func Inspect(dir string) (Inspection, error) {
	p, err := openParts(dir, slog.New(slog.DiscardHandler))
	if err != nil {
		return Inspection{}, err
	}
	defer p.close()
	return p.inspect(dir)
}

// Recover forces req's configuration into the stopped member's directory
// dir (<dataDir>/cluster) and logs what it did. It fails on a running
// member's directory, on a directory with no state, and for a
// configuration without req.MemberID. Running it again with the same
// request is harmless; a crash at any point leaves the old state (run it
// again) or the recovered one.
func Recover(dir string, req RecoveryRequest, log *slog.Logger) (RecoveryResult, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := req.Validate(); err != nil {
		return RecoveryResult{}, err
	}
	p, err := openParts(dir, log)
	if err != nil {
		return RecoveryResult{}, err
	}
	res, err := p.recover(dir, req, log.With("member", req.MemberID))
	return res, errors.Join(err, p.close())
}

// RequestRecovery writes req as the request the member carries out at its
// next start (Open), replacing an earlier one. The file is written
// atomically: a crash leaves the old request or the new one.
func RequestRecovery(dir string, req RecoveryRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	if !exists(filepath.Join(dir, "raft")) {
		return fmt.Errorf("%w: %s holds no member state", ErrRecoveryRefused, dir)
	}
	if req.Created.IsZero() {
		req.Created = time.Now().UTC()
	}
	data, err := json.MarshalIndent(req, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, RecoveryRequestFile+".tmp")
	_ = os.Remove(tmp)
	if err := writeFile(tmp, bytes.NewReader(data)); err != nil {
		return fmt.Errorf("cluster: write the recovery request: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, RecoveryRequestFile)); err != nil {
		return fmt.Errorf("cluster: write the recovery request: %w", err)
	}
	return syncDir(dir)
}

// readRecoveryRequest reads the pending request in dir (nil when none).
func readRecoveryRequest(dir string) (*RecoveryRequest, error) {
	f, err := os.Open(filepath.Join(dir, RecoveryRequestFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: read the recovery request: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxRecoveryRequestBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cluster: read the recovery request: %w", err)
	}
	if len(data) > maxRecoveryRequestBytes {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrRecoveryRefused, RecoveryRequestFile, maxRecoveryRequestBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var req RecoveryRequest
	if err := dec.Decode(&req); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrRecoveryRefused, RecoveryRequestFile, err)
	}
	return &req, nil
}

// recoverOnRequest carries out a pending recovery request (Open, before
// Raft starts). A request for another member, or one that fails, stops
// the start: the member must not run with a state other than the one the
// operator asked for. The request is removed once carried out.
func (n *Node) recoverOnRequest() error {
	req, err := readRecoveryRequest(n.cfg.Dir)
	if err != nil || req == nil {
		return err
	}
	if req.MemberID != n.cfg.ID {
		return fmt.Errorf("%w: %s is for member %q, this is %q", ErrRecoveryRefused, RecoveryRequestFile, req.MemberID, n.cfg.ID)
	}
	if err := req.Validate(); err != nil {
		return err
	}
	p := &recoveryParts{logs: n.logs, snaps: n.snaps, st: n.st}
	if _, err := p.recover(n.cfg.Dir, *req, n.log); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(n.cfg.Dir, RecoveryRequestFile)); err != nil {
		return fmt.Errorf("cluster: remove the carried out recovery request: %w", err)
	}
	return syncDir(n.cfg.Dir)
}

// recoveryParts are a member's state, opened without Raft.
type recoveryParts struct {
	logs  *logStore
	snaps *raft.FileSnapshotStore
	st    *replStore
	owned bool // opened by openParts: close closes them
}

func openParts(dir string, log *slog.Logger) (*recoveryParts, error) {
	raftDir := filepath.Join(dir, "raft")
	if !hasLog(raftDir) {
		return nil, fmt.Errorf("%w: %s holds no member state (no raft log)", ErrRecoveryRefused, dir)
	}
	p := &recoveryParts{owned: true}
	var err error
	// The log is locked while open: a running member's directory is
	// refused here.
	p.logs, err = openLogStore(raftDir, log)
	if err != nil {
		return nil, fmt.Errorf("%w: is the member still running? %w", ErrRecoveryRefused, err)
	}
	hlog := hclogFor(log)
	p.snaps, err = raft.NewFileSnapshotStoreWithLogger(raftDir, 2, hlog)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("cluster: open the snapshots: %w", err), p.close())
	}
	p.st = &replStore{dir: dir, opts: pebblestore.Options{Logger: log, Durability: pebblestore.Interval}}
	if err := p.st.openLocal(); err != nil {
		p.st = nil
		return nil, errors.Join(fmt.Errorf("%w: open the store: %w", ErrRecoveryRefused, err), p.close())
	}
	return p, nil
}

func (p *recoveryParts) close() error {
	if !p.owned {
		return nil
	}
	var errs []error
	if p.st != nil && p.st.st != nil {
		errs = append(errs, p.st.Close())
	}
	if p.logs != nil {
		errs = append(errs, p.logs.Close())
	}
	return errors.Join(errs...)
}

func (p *recoveryParts) inspect(dir string) (Inspection, error) {
	var in Inspection
	var err error
	if in.FirstLogIndex, err = p.logs.FirstIndex(); err != nil {
		return in, err
	}
	if in.LastLogIndex, err = p.logs.LastIndex(); err != nil {
		return in, err
	}
	in.CurrentTerm, _ = p.logs.GetUint64([]byte("CurrentTerm"))
	var conf raft.Configuration
	metas, err := p.snaps.List()
	if err != nil {
		return in, fmt.Errorf("cluster: list the snapshots: %w", err)
	}
	if len(metas) > 0 {
		in.LastSnapshotIndex = metas[0].Index
		conf = metas[0].Configuration
		if metas[0].Index >= in.LastLogIndex {
			in.LastLogIndex, in.LastLogTerm = metas[0].Index, metas[0].Term
		}
	}
	if in.LastLogIndex > 0 && in.LastLogTerm == 0 {
		var l raft.Log
		if err := p.logs.GetLog(in.LastLogIndex, &l); err != nil {
			return in, fmt.Errorf("cluster: read log entry %d: %w", in.LastLogIndex, err)
		}
		in.LastLogTerm = l.Term
	}
	// The latest configuration: the snapshot's, then any change in the log
	// after it.
	from := max(in.FirstLogIndex, in.LastSnapshotIndex+1)
	if in.FirstLogIndex > 0 {
		for i := from; i <= in.LastLogIndex; i++ {
			var l raft.Log
			if err := p.logs.GetLog(i, &l); err != nil {
				return in, fmt.Errorf("cluster: read log entry %d: %w", i, err)
			}
			if l.Type == raft.LogConfiguration {
				conf = raft.DecodeConfiguration(l.Data)
			}
		}
	}
	for _, s := range conf.Servers {
		in.Members = append(in.Members, RecoveryMember{ID: string(s.ID), RaftAddress: string(s.Address)})
	}
	in.AppliedIndex = p.st.cur().AppliedIndex()
	req, err := readRecoveryRequest(dir)
	if err != nil {
		return in, err
	}
	in.PendingRequest = req
	return in, nil
}

// recover runs Raft's RecoverCluster over the member's parts; log names
// the member (a member's own logger does, Recover adds it for the CLI).
func (p *recoveryParts) recover(dir string, req RecoveryRequest, log *slog.Logger) (RecoveryResult, error) {
	var res RecoveryResult
	var err error
	if res.Before, err = p.inspect(dir); err != nil {
		return res, err
	}
	res.Before.PendingRequest = nil
	log.Warn("RECOVERING FROM A LOST QUORUM: forcing a new cluster configuration from this member's state; "+
		"entries this member never received are lost",
		"lastLogIndex", res.Before.LastLogIndex, "lastLogTerm", res.Before.LastLogTerm,
		"appliedIndex", res.Before.AppliedIndex, "oldMembers", memberIDs(res.Before.Members), "newMembers", memberIDs(req.Members))

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(req.MemberID)
	rc.Logger = hclogFor(log)
	var fatal error
	f := &recoveryFSM{fsm: fsm{log: log, st: p.st, dir: dir, fatal: func(err error) {
		if fatal == nil {
			fatal = err
		}
	}}}
	// The store already holds the latest snapshot when it applied past
	// it: RecoverCluster's restore of that snapshot is then skipped (the
	// log replay skips what the store applied).
	if metas, err := p.snaps.List(); err == nil && len(metas) > 0 && p.st.cur().AppliedIndex() >= metas[0].Index {
		f.skipRestore = true
	}
	_, trans := raft.NewInmemTransport(raft.ServerAddress(req.MemberID))
	defer trans.Close()
	if err := raft.RecoverCluster(rc, f, p.logs, p.logs, p.snaps, trans, req.configuration()); err != nil {
		return res, fmt.Errorf("cluster: recover: %w", err)
	}
	// RecoverCluster never releases the snapshot it took.
	_ = os.RemoveAll(filepath.Join(dir, "checkpoints"))
	if fatal != nil {
		return res, fmt.Errorf("cluster: recover: %w", fatal)
	}
	if res.After, err = p.inspect(dir); err != nil {
		return res, err
	}
	res.After.PendingRequest = nil
	log.Warn("RECOVERED FROM A LOST QUORUM: this member's configuration is now the one forced; "+
		"add the other members back empty",
		"members", memberIDs(res.After.Members), "lastLogIndex", res.After.LastLogIndex,
		"appliedIndex", res.After.AppliedIndex)
	return res, nil
}

// recoveryFSM is the member's fsm, skipping a snapshot restore the store
// does not need.
type recoveryFSM struct {
	fsm
	skipRestore bool
}

func (f *recoveryFSM) Restore(rc io.ReadCloser) error {
	if f.skipRestore {
		return rc.Close()
	}
	return f.fsm.Restore(rc)
}

func memberIDs(ms []RecoveryMember) []string {
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}
