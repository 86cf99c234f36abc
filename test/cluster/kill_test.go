package cluster_test

import (
	"math/rand/v2"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history/workload"
)

// newRand is the scenario's random source, its seed logged
// (BOLLARD_CLUSTER_SEED replays one).
func newRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("BOLLARD_CLUSTER_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("BOLLARD_CLUSTER_SEED: %v", err)
		}
		seed = v
	}
	t.Logf("random seed %d (BOLLARD_CLUSTER_SEED replays it)", seed)
	return rand.New(rand.NewPCG(seed, seed))
}

// TestLeaderKilledUnderLoad kills the leader with SIGKILL under load at
// random moments, several times, restarting it each time as a follower:
// every acknowledged message reaches every persistent subscriber, online
// or offline, in order, QoS 2 once.
func TestLeaderKilledUnderLoad(t *testing.T) {
	kills := 3
	if testing.Short() {
		kills = 1
	}
	c := newCluster(t, 3)
	c.startAll()
	c.leader(60 * time.Second)
	w := workload.Start(t, c.addrs(), workload.Default)
	rng := newRand(t)
	w.WaitAcked(20, time.Minute)
	var failovers []time.Duration
	for range kills {
		l := c.leader(30 * time.Second)
		w.WaitProgress(1+rng.Uint64N(200), time.Minute)
		t0 := time.Now()
		c.members[l].killNow()
		nl := c.leader(30 * time.Second)
		failovers = append(failovers, time.Since(t0))
		if nl == l {
			t.Fatal("the killed member serves")
		}
		c.start(l)
		c.following(l, nl, time.Minute)
	}
	w.WaitAcked(20, time.Minute)
	t.Logf("kill -9 of the leader to a new leader serving: %s", workload.Durations(failovers))
	w.Finish(2 * time.Minute)
	t.Logf("%d acknowledged in all", w.Acked())
}
