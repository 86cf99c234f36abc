package cluster_test

import (
	"syscall"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history"
	"github.com/bollard-io/bollard/test/history/workload"
	"github.com/bollard-io/bollard/test/poll"
)

// TestFollowerKilledUnderLoad kills a follower with SIGKILL under load and
// restarts it: the leader keeps serving with the other follower, no client
// is disconnected, the member catches up, nothing acknowledged is lost.
func TestFollowerKilledUnderLoad(t *testing.T) {
	kills := 2
	if testing.Short() {
		kills = 1
	}
	c := newCluster(t, 3)
	c.startAll()
	l := c.leader(60 * time.Second)
	w := workload.Start(t, c.addrs(), workload.Default)
	rng := newRand(t)
	w.WaitAcked(20, time.Minute)
	for k := range kills {
		f := (l + 1 + k) % 3
		w.WaitProgress(1+rng.Uint64N(200), time.Minute)
		c.members[f].killNow()
		w.WaitAcked(30, time.Minute) // served by a majority of two
		c.start(f)
		c.following(f, l, time.Minute)
	}
	w.WaitAcked(20, time.Minute)
	if now := c.serving(); now != l {
		t.Errorf("the leader changed from %s to member %d although only followers died", c.members[l].id, now)
	}
	for _, o := range w.ClientOutages() {
		t.Errorf("%s lost its connection to %s at %s (only followers died)", o.Client, o.From, o.At.Format("15:04:05.000"))
	}
	w.Finish(2 * time.Minute)
}

// TestIsolatedLeader cuts the leader off from both followers (its MQTT
// port stays reachable): the others elect a new leader; the isolated one
// acknowledges nothing after its lease, stops serving and disconnects its
// clients, who find the new leader; once healed it follows.
func TestIsolatedLeader(t *testing.T) {
	c := newCluster(t, 3, withMesh())
	c.startAll()
	l := c.leader(60 * time.Second)
	w := workload.Start(t, c.addrs(), workload.Default)
	w.WaitAcked(30, time.Minute)
	old := c.members[l]
	var onOld []string // clients connected to the leader when it is cut off
	for _, p := range w.Pubs {
		if sp := p.Spans(); len(sp) > 0 && sp[len(sp)-1].Addr == old.mqtt && sp[len(sp)-1].Down.IsZero() {
			onOld = append(onOld, p.ID())
		}
	}
	for _, s := range w.Online {
		if sp := s.Spans(); len(sp) > 0 && sp[len(sp)-1].Addr == old.mqtt && sp[len(sp)-1].Down.IsZero() {
			onOld = append(onOld, s.ClientID())
		}
	}

	isolated := time.Now()
	c.mesh.Isolate(l)
	var stepDown time.Duration
	poll.Wait(t, 30*time.Second, 10*time.Millisecond, old.id+" to stop serving", func() bool {
		s, err := old.status()
		if err == nil && !s.Serving && s.Role != "leader" {
			stepDown = time.Since(isolated)
			return true
		}
		return false
	})
	nl := c.leaderOtherThan(l, 30*time.Second)
	elected := time.Since(isolated)
	w.WaitAcked(30, time.Minute) // the clients found the new leader
	lastDrop := clientsLeft(t, w, old.mqtt, isolated, onOld)
	t.Logf("isolated %s: it stopped serving after %s (lease %s); %s leads after %s; its %d clients were all disconnected within %s",
		old.id, stepDown.Round(time.Millisecond), c.lease(), c.members[nl].id, elected.Round(time.Millisecond), len(onOld), lastDrop.Round(time.Millisecond))
	// A leader without a majority steps down within its lease, checked
	// once per lease at most: twice the lease, and the scheduling of a
	// busy machine.
	if limit := 2*c.lease() + 2*time.Second; stepDown > limit {
		t.Errorf("the isolated leader served for %s, over %s", stepDown, limit)
	}
	// Then it waits at most a lease to learn the new leader (it cannot)
	// before it disconnects its clients.
	if limit := 3*c.lease() + 2*time.Second; lastDrop > limit {
		t.Errorf("the isolated leader kept a client for %s, over %s", lastDrop, limit)
	}

	c.mesh.HealAll()
	c.following(l, nl, time.Minute)
	w.WaitAcked(20, time.Minute)
	w.Finish(2 * time.Minute)
	checkNoAckAfter(t, w.Rec.History(), old.mqtt, isolated.Add(c.lease()+time.Second))
}

// clientsLeft checks that every client in ids ended its connection to
// addr after from, and returns how long after from the last one did.
func clientsLeft(t *testing.T, w *workload.Workload, addr string, from time.Time, ids []string) time.Duration {
	t.Helper()
	var last time.Duration
	want := map[string]bool{}
	for _, id := range ids {
		want[id] = true
	}
	for _, o := range w.ClientOutages() {
		if want[o.Client] && o.From == addr && !o.At.Before(from) {
			delete(want, o.Client)
			last = max(last, o.At.Sub(from))
		}
	}
	for id := range want {
		t.Errorf("%s was not disconnected from %s", id, addr)
	}
	return last
}

// checkNoAckAfter reports every acknowledged publish that server
// acknowledged after the given time.
func checkNoAckAfter(t *testing.T, h history.History, server string, after time.Time) {
	t.Helper()
	n := 0
	for _, a := range h.Attempts {
		if a.Outcome == history.Acked && a.Server == server && a.Settled.After(after) {
			n++
			if n <= 10 {
				t.Errorf("pub-%s/%d acknowledged by the isolated member %s at %s, after %s",
					a.Publisher, a.Seq, server, a.Settled.Format("15:04:05.000"), after.Format("15:04:05.000"))
			}
		}
	}
	if n > 10 {
		t.Errorf("... %d acknowledgements in all", n)
	}
}

// TestFullRestart kills every member at once under load and starts them
// again: everything acknowledged survives, on disk, in every session.
func TestFullRestart(t *testing.T) {
	restarts := 2
	if testing.Short() {
		restarts = 1
	}
	c := newCluster(t, 3)
	c.startAll()
	c.leader(60 * time.Second)
	w := workload.Start(t, c.addrs(), workload.Default)
	rng := newRand(t)
	w.WaitAcked(20, time.Minute)
	for range restarts {
		w.WaitProgress(1+rng.Uint64N(200), time.Minute)
		for _, m := range c.members {
			m.mu.Lock()
			m.expected = true
			_ = m.cmd.Process.Signal(syscall.SIGKILL)
			m.mu.Unlock()
		}
		for _, m := range c.members {
			m.killNow() // waits for the end
		}
		before := w.Acked()
		c.startAll()
		l := c.leader(time.Minute)
		w.WaitAcked(20, time.Minute)
		t.Logf("restarted: %s leads; %d acknowledged before the kill", c.members[l].id, before)
	}
	w.Finish(2 * time.Minute)
}
