package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/broker/config"
	"github.com/bollard-io/bollard/broker/store/pebblestore"
	"github.com/bollard-io/bollard/test/poll"
)

// lostQuorum builds a 3-member cluster, commits msgs messages for one
// client, waits until member 0 applied all of them, and stops every
// member: member 0's directory is the survivor's.
func lostQuorum(t *testing.T, msgs int) *testCluster {
	t.Helper()
	c := newTestCluster(t, 3, fastTiming)
	li := c.leader()
	st := c.nodes[li].Store()
	commitQueue(t, st, "c1", msgs, func(i int) string { return fmt.Sprintf("p%d", i-1) })
	waitApplied(t, c.nodes[0], c.nodes[li])
	for i := range c.nodes {
		c.stop(i)
	}
	return c
}

func survivorRequest(c *testCluster) RecoveryRequest {
	return RecoveryRequest{MemberID: c.members[0].ID, Members: []RecoveryMember{{ID: c.members[0].ID, RaftAddress: c.members[0].RaftAddress}}}
}

// startAlone starts member 0 alone and waits until it serves.
func startAlone(t *testing.T, c *testCluster) *Node {
	t.Helper()
	n, err := Open(Config{
		ID: c.members[0].ID, Dir: c.dirs[0], Bind: c.members[0].RaftAddress, Members: c.members,
		Bootstrap: true, Secret: testSecret, Timing: fastTiming,
		Logger: slog.New(slog.NewTextHandler(c.logs[0], nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	poll.Wait(t, 20*time.Second, 10*time.Millisecond, "the recovered member to serve", func() bool {
		s, _ := n.State()
		return s.Serving
	})
	return n
}

func wantPayloads(t *testing.T, n *Node, msgs int) {
	t.Helper()
	got := payloads(t, n.Store(), "c1")
	if len(got) != msgs {
		t.Fatalf("recovered member holds %d messages, want %d", len(got), msgs)
	}
	for i, p := range got {
		if p != fmt.Sprintf("p%d", i) {
			t.Fatalf("message %d is %q", i, p)
		}
	}
}

func TestRecoverSurvivorAlone(t *testing.T) {
	const msgs = 40
	c := lostQuorum(t, msgs)
	// Without recovery the survivor alone never leads.
	var logs strings.Builder
	res, err := Recover(c.dirs[0], survivorRequest(c), slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if got := memberIDs(res.Before.Members); !slices.Equal(got, []string{"m0", "m1", "m2"}) {
		t.Errorf("members before: %v", got)
	}
	if got := memberIDs(res.After.Members); !slices.Equal(got, []string{"m0"}) {
		t.Errorf("members after: %v", got)
	}
	if res.After.LastLogIndex != res.Before.LastLogIndex || res.After.AppliedIndex < res.Before.LastLogIndex {
		t.Errorf("recovery moved the log: before %+v after %+v", res.Before, res.After)
	}
	if !strings.Contains(logs.String(), "RECOVERED FROM A LOST QUORUM") {
		t.Errorf("the recovery was not logged loudly:\n%s", logs.String())
	}
	// Idempotent: the same recovery again changes nothing.
	res2, err := Recover(c.dirs[0], survivorRequest(c), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if res2.After.LastLogIndex != res.After.LastLogIndex || !slices.Equal(memberIDs(res2.After.Members), []string{"m0"}) {
		t.Errorf("second recovery: %+v, first %+v", res2.After, res.After)
	}

	n := startAlone(t, c)
	wantPayloads(t, n, msgs)
	st := n.Status()
	if st.LastLogTerm < res.After.LastLogTerm || st.LastLogTerm == 0 {
		t.Errorf("status lastLogTerm %d, the recovered log's %d", st.LastLogTerm, res.After.LastLogTerm)
	}
	if len(st.Members) != 1 || st.Members[0].ID != "m0" || !st.Members[0].Voter {
		t.Errorf("recovered configuration: %+v", st.Members)
	}
	// It commits alone.
	if err := n.Store().Commit(context.Background(), enqueueBatch(n.Store(), "c1", msgs+1, "after")); err != nil {
		t.Fatal(err)
	}
	if got := payloads(t, n.Store(), "c1"); len(got) != msgs+1 {
		t.Errorf("after a commit: %d messages", len(got))
	}
}

func TestRecoverRefusals(t *testing.T) {
	c := lostQuorum(t, 3)
	other := RecoveryMember{ID: "m1", RaftAddress: c.members[1].RaftAddress}
	self := RecoveryMember{ID: "m0", RaftAddress: c.members[0].RaftAddress}
	for name, req := range map[string]RecoveryRequest{
		"without this member": {MemberID: "m0", Members: []RecoveryMember{other}},
		"no members":          {MemberID: "m0"},
		"no member ID":        {Members: []RecoveryMember{self}},
		"twice":               {MemberID: "m0", Members: []RecoveryMember{self, self}},
		"no address":          {MemberID: "m0", Members: []RecoveryMember{{ID: "m0"}}},
		"too many":            {MemberID: "m0", Members: slices.Repeat([]RecoveryMember{self}, config.MaxClusterMembers+1)},
	} {
		if _, err := Recover(c.dirs[0], req, slog.New(slog.DiscardHandler)); !errors.Is(err, ErrRecoveryRefused) {
			t.Errorf("%s: %v", name, err)
		}
		if err := RequestRecovery(c.dirs[0], req); !errors.Is(err, ErrRecoveryRefused) {
			t.Errorf("request %s: %v", name, err)
		}
	}
	// A directory with no member state.
	if _, err := Recover(t.TempDir(), survivorRequest(c), slog.New(slog.DiscardHandler)); !errors.Is(err, ErrRecoveryRefused) {
		t.Errorf("empty directory: %v", err)
	}
	// Nothing was changed by the refusals.
	in, err := Inspect(c.dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(memberIDs(in.Members), []string{"m0", "m1", "m2"}) {
		t.Errorf("refusals changed the configuration: %v", memberIDs(in.Members))
	}

	// A running member's directory (Pebble's lock).
	c.start(0)
	if _, err := Recover(c.dirs[0], survivorRequest(c), slog.New(slog.DiscardHandler)); !errors.Is(err, ErrRecoveryRefused) {
		t.Errorf("running member: %v", err)
	}
	if _, err := Inspect(c.dirs[0]); err == nil {
		t.Error("inspected a running member's directory")
	}
	c.stop(0)

	// A request for another member stops the start and stays.
	req := survivorRequest(c)
	req.MemberID = "m1"
	req.Members = append(req.Members, other)
	if err := RequestRecovery(c.dirs[0], req); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Config{ID: "m0", Dir: c.dirs[0], Bind: c.members[0].RaftAddress, Members: c.members, Secret: testSecret, Timing: fastTiming,
		Logger: slog.New(slog.DiscardHandler)})
	if !errors.Is(err, ErrRecoveryRefused) {
		t.Errorf("open with another member's request: %v", err)
	}
	// Hostile request files: unknown fields, oversized.
	for name, body := range map[string]string{
		"unknown field": `{"memberID":"m0","members":[],"force":true}`,
		"oversized":     `{"memberID":"m0","members":[` + strings.Repeat(" ", maxRecoveryRequestBytes) + `]}`,
		"not JSON":      `peers`,
	} {
		if err := os.WriteFile(filepath.Join(c.dirs[0], RecoveryRequestFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := readRecoveryRequest(c.dirs[0]); !errors.Is(err, ErrRecoveryRefused) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestRecoverRequestAtStart: the request file is carried out once by Open
// and removed.
func TestRecoverRequestAtStart(t *testing.T) {
	const msgs = 20
	c := lostQuorum(t, msgs)
	if err := RequestRecovery(c.dirs[0], survivorRequest(c)); err != nil {
		t.Fatal(err)
	}
	in, err := Inspect(c.dirs[0])
	if err != nil {
		t.Fatal(err)
	}
	if in.PendingRequest == nil || in.PendingRequest.MemberID != "m0" {
		t.Errorf("inspect does not show the pending request: %+v", in.PendingRequest)
	}
	n := startAlone(t, c)
	if exists(filepath.Join(c.dirs[0], RecoveryRequestFile)) {
		t.Error("the request was not removed once carried out")
	}
	if !strings.Contains(c.logs[0].String(), "RECOVERED FROM A LOST QUORUM") {
		t.Error("the recovery at start was not logged")
	}
	wantPayloads(t, n, msgs)
}

// TestRecoverCrash kills a recovery (another process) at many points: the
// directory then holds the old configuration or the new one, and the
// recovery run again, then the member, holds every message.
func TestRecoverCrash(t *testing.T) {
	if os.Getenv("BOLLARD_RECOVER_CHILD") != "" {
		return // the child is TestRecoverCrashChild
	}
	const msgs = 200
	c := lostQuorum(t, msgs)
	golden := t.TempDir()
	if err := os.CopyFS(golden, os.DirFS(c.dirs[0])); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	outcomes := map[string]int{}
	for i := range 12 {
		dir := filepath.Join(t.TempDir(), "m0")
		if err := os.CopyFS(dir, os.DirFS(golden)); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(exe, "-test.run=^TestRecoverCrashChild$")
		cmd.Env = append(os.Environ(), "BOLLARD_RECOVER_CHILD="+dir, "BOLLARD_RECOVER_ADDR="+c.members[0].RaftAddress)
		var out strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		started := filepath.Join(filepath.Dir(dir), "started")
		poll.Wait(t, 30*time.Second, time.Millisecond, "the recovery process to start", func() bool { return exists(started) })
		time.Sleep(time.Duration(i) * 35 * time.Millisecond) // the kill's moment, not a wait for a condition
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if out.Len() > 0 {
			t.Logf("kill %d: the recovery process said: %.500s", i, out.String())
		}
		in, err := Inspect(dir)
		if err != nil {
			t.Fatalf("kill %d: inspect: %v", i, err)
		}
		ids := strings.Join(memberIDs(in.Members), ",")
		if ids != "m0,m1,m2" && ids != "m0" {
			t.Fatalf("kill %d: configuration %s is neither the old nor the recovered", i, ids)
		}
		outcomes[ids]++
		if _, err := Recover(dir, survivorRequest(c), slog.New(slog.DiscardHandler)); err != nil {
			t.Fatalf("kill %d: recovery again: %v", i, err)
		}
		cc := *c
		cc.dirs = []string{dir}
		n := startAlone(t, &cc)
		wantPayloads(t, n, msgs)
		if err := n.Close(); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("configurations found after the kills: %v", outcomes)
}

// TestRecoverCrashChild is TestRecoverCrash's recovery process.
func TestRecoverCrashChild(t *testing.T) {
	dir := os.Getenv("BOLLARD_RECOVER_CHILD")
	if dir == "" {
		t.Skip("run by TestRecoverCrash")
	}
	req := RecoveryRequest{MemberID: "m0", Members: []RecoveryMember{{ID: "m0", RaftAddress: os.Getenv("BOLLARD_RECOVER_ADDR")}}}
	if err := os.WriteFile(filepath.Join(filepath.Dir(dir), "started"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 100 { // recover again and again, to be killed at every step
		if _, err := Recover(dir, req, slog.New(slog.DiscardHandler)); err != nil {
			t.Fatal(err)
		}
	}
}

// A member left out of a quorum recovery that comes back with its old data
// (here: it holds entries the recovered survivor never received, and the
// survivor has since written others at the same indexes) stops with
// ErrDiverged when the leader's log replaces its own, instead of skipping
// the new entries as applied and serving a store of another history.
func TestDivergedMemberStops(t *testing.T) {
	c := newTestCluster(t, 3, fastTiming)
	li := c.leader()
	f, g := (li+1)%3, (li+2)%3 // f survives the recovery, g comes back from the old history
	ctx := context.Background()
	st := c.nodes[li].Store()
	commitQueue(t, st, "c1", 5, func(i int) string { return fmt.Sprintf("p%d", i-1) })
	waitApplied(t, c.nodes[f], c.nodes[li])
	c.stop(f)
	for i := 5; i < 15; i++ { // the leader and g only: f never gets these
		if err := st.Commit(ctx, enqueueBatch(st, "c1", uint64(i+1), fmt.Sprintf("old%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	waitApplied(t, c.nodes[g], c.nodes[li])
	oldApplied := c.nodes[g].st.cur().AppliedIndex()
	c.stop(li)
	c.stop(g)

	req := RecoveryRequest{MemberID: c.members[f].ID, Members: []RecoveryMember{{ID: c.members[f].ID, RaftAddress: c.members[f].RaftAddress}}}
	if _, err := Recover(c.dirs[f], req, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
	c.start(f)
	if c.leader() != f {
		t.Fatal("the recovered member does not lead")
	}
	nst := c.nodes[f].Store()
	for i := 5; i < 40; i++ { // the new history, over the indexes g applied
		if err := nst.Commit(ctx, enqueueBatch(nst, "c1", uint64(i+1), fmt.Sprintf("new%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if c.nodes[f].st.cur().AppliedIndex() <= oldApplied {
		t.Fatalf("the new history (to %d) does not reach g's applied index %d", c.nodes[f].st.cur().AppliedIndex(), oldApplied)
	}
	c.start(g)
	addCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	go func() { _ = c.nodes[f].AddMember(addCtx, c.members[g]) }() // never completes: g stops
	waitStopped(t, c.nodes[g], "the member of the old history")
	if err := c.nodes[g].Err(); !errors.Is(err, ErrDiverged) || !strings.Contains(err.Error(), fmt.Sprintf("entry %d", oldApplied)) {
		t.Fatalf("g stopped with %v, want ErrDiverged at entry %d\n%s", err, oldApplied, c.logs[g].String())
	}
	// Nothing of the new history reached g's store: it is as g left it.
	c.stop(g)
	ps, err := pebblestore.Open(filepath.Join(c.dirs[g], "store"), pebblestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ps.Close()
	got := payloads(t, ps, "c1")
	if ps.AppliedIndex() != oldApplied || len(got) != 15 || got[14] != "old14" {
		t.Fatalf("g's store after stopping: applied %d (was %d), %d messages %q", ps.AppliedIndex(), oldApplied, len(got), got)
	}
}
