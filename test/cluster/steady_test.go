package cluster_test

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history/workload"
)

// TestSteadyLoad runs the scenarios' workload for BOLLARD_CLUSTER_STEADY
// (a duration; the test is skipped without it) with nothing failing, and
// counts what the timeouts did meanwhile: elections (term changes) and
// heartbeat timeouts (a follower that heard from no leader for its
// heartbeat timeout and asked for pre-votes; with a leader in place the
// others refuse them and the term stays). The defaults of the cluster
// timeouts must cause neither on a loaded machine: the test fails on a
// term change or a client disconnected.
func TestSteadyLoad(t *testing.T) {
	env := os.Getenv("BOLLARD_CLUSTER_STEADY")
	if env == "" {
		t.Skip("set BOLLARD_CLUSTER_STEADY to a duration (e.g. 2m) to run it")
	}
	d, err := time.ParseDuration(env)
	if err != nil || d <= 0 {
		t.Fatalf("BOLLARD_CLUSTER_STEADY=%q: want a positive duration", env)
	}
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader(60 * time.Second)
	w := workload.Start(t, c.addrs(), workload.Default)
	w.WaitAcked(20, time.Minute)
	before, err := c.members[l].status()
	if err != nil {
		t.Fatal(err)
	}
	timeouts0 := c.heartbeatTimeouts()
	acked0 := w.Acked()
	time.Sleep(d) // the run's length is the measurement
	after, err := c.members[l].status()
	if err != nil {
		t.Fatal(err)
	}
	timeouts := c.heartbeatTimeouts() - timeouts0
	t.Logf("steady run of %s: %d acknowledged; term %d -> %d (%d elections); %d heartbeat timeouts (pre-vote rounds)",
		d, w.Acked()-acked0, before.Term, after.Term, after.Term-before.Term, timeouts)
	if after.Term != before.Term || after.ID != before.ID {
		t.Errorf("the leadership changed in a steady run: %s term %d -> %s term %d", before.ID, before.Term, after.ID, after.Term)
	}
	for _, o := range w.ClientOutages() {
		t.Errorf("%s lost its connection to %s at %s in a steady run", o.Client, o.From, o.At.Format("15:04:05.000"))
	}
	w.Finish(2 * time.Minute)
}

// heartbeatTimeouts counts the heartbeat timeouts in every member's log.
func (c *testCluster) heartbeatTimeouts() int {
	n := 0
	for _, m := range c.members {
		data, _ := os.ReadFile(m.logFile)
		n += strings.Count(string(data), "heartbeat timeout reached")
	}
	return n
}
