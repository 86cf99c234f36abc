package cluster_test

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history/workload"
	"github.com/bollard-io/bollard/test/poll"
)

// TestRollingUpgradeFromEarlierBuild rolls a cluster running an earlier
// build, one that reads log entry format 1 only (BOLLARD_EARLIER_BIN, for
// example main's bollard before format 2; skipped without it), to this
// build under load, followers first and the leader last, as the operator
// does. While any member runs the earlier build, whichever build leads,
// every member of this build reports format 1 and no member stops; once
// all run this build, every member reports format 2; nothing acknowledged
// is lost (the workload's history check) and no member ends unasked (the
// harness's cleanup).
func TestRollingUpgradeFromEarlierBuild(t *testing.T) {
	earlier := os.Getenv("BOLLARD_EARLIER_BIN")
	if earlier == "" {
		t.Skip("BOLLARD_EARLIER_BIN is not set: no earlier build to upgrade from")
	}
	c := newCluster(t, 3, withoutRace())
	for _, m := range c.members {
		m.bin = earlier
	}
	c.startAll()
	l := c.leader(60 * time.Second)
	w := workload.Start(t, c.addrs(), workload.Default)
	w.WaitAcked(20, time.Minute)
	for k, i := range []int{(l + 1) % 3, (l + 2) % 3, l} {
		c.stopGracefully(i, 30*time.Second)
		c.members[i].bin = "" // this build
		c.start(i)
		nl := c.leader(time.Minute)
		c.following(i, nl, time.Minute)
		w.WaitAcked(10, time.Minute)
		if k == 2 {
			break
		}
		for j, m := range c.members {
			if m.bin != "" {
				continue
			}
			s, err := m.status()
			if err != nil {
				t.Fatal(err)
			}
			if s.EntryFormat != 1 {
				t.Fatalf("%s (this build) reports format %d while %d members run the earlier build", c.members[j].id, s.EntryFormat, 2-k)
			}
		}
		t.Logf("rolled %s to this build; %s leads, format 1", c.members[i].id, c.members[nl].id)
		if k == 0 && nl != i {
			// This build leads, with two members of the earlier one: it
			// keeps writing format 1, and they keep following.
			body, _ := json.Marshal(map[string]string{"to": c.members[i].id})
			if err := postJSON(c.members[nl].admin, "/v1/cluster/leadership-transfer", body); err != nil {
				t.Fatal(err)
			}
			if got := c.leader(time.Minute); got != i {
				t.Fatalf("%s leads after the transfer to %s", c.members[got].id, c.members[i].id)
			}
			w.WaitAcked(10, time.Minute)
			for j := range c.members {
				if j != i {
					c.following(j, i, time.Minute)
				}
			}
			if s, err := c.members[i].status(); err != nil || s.EntryFormat != 1 {
				t.Fatalf("%s (this build) leads two members of the earlier one in format %d (%v)", c.members[i].id, s.EntryFormat, err)
			}
			t.Logf("%s (this build) leads in format 1", c.members[i].id)
		}
	}
	err := poll.Until(context.Background(), time.Minute, 100*time.Millisecond, poll.Bool(func() bool {
		for _, m := range c.members {
			if s, err := m.status(); err != nil || s.EntryFormat != 2 {
				return false
			}
		}
		return true
	}))
	if err != nil {
		t.Fatalf("not every member reports format 2 after the upgrade: %v", err)
	}
	w.WaitAcked(20, time.Minute)
	t.Logf("every member reports format 2; %d publishes acknowledged", w.Acked())
	w.Finish(2 * time.Minute)
}

// TestRollbackToEarlierBuildStops starts a build from before the Raft log
// moved to raft/wal (BOLLARD_EARLIER_BIN, for example main's bollard at
// 98bfcbe; skipped without it) on a member this build has run, as a
// rollback does. That build would find no log and no record of its votes
// where it looks (raft/log) and start from term 0; it must stop instead,
// on the guard file this build leaves there. This build then starts on the
// member again and follows, and nothing acknowledged is lost.
func TestRollbackToEarlierBuildStops(t *testing.T) {
	earlier := os.Getenv("BOLLARD_EARLIER_BIN")
	if earlier == "" {
		t.Skip("BOLLARD_EARLIER_BIN is not set: no earlier build to roll back to")
	}
	c := newCluster(t, 3, withoutRace())
	c.startAll()
	l := c.leader(60 * time.Second)
	w := workload.Start(t, c.addrs(), workload.Default)
	w.WaitAcked(20, time.Minute)
	f := (l + 1) % 3
	c.stopGracefully(f, 30*time.Second)
	c.members[f].bin = earlier
	if err := c.startFailing(f, 30*time.Second); err == nil {
		t.Fatalf("the earlier build ended with status 0 on %s; its log ends:\n%s", c.members[f].id, c.logTail(f))
	}
	if !c.logContains(f, "not a directory") {
		t.Fatalf("the earlier build did not stop on the guard file; its log ends:\n%s", c.logTail(f))
	}
	w.WaitAcked(10, time.Minute) // the other two carry on meanwhile
	c.members[f].bin = ""
	c.start(f)
	c.following(f, c.leader(time.Minute), time.Minute)
	w.WaitAcked(20, time.Minute)
	w.Finish(2 * time.Minute)
}
