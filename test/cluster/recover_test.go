package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/bollard-io/bollard/test/history/workload"
	"github.com/bollard-io/bollard/test/poll"
)

// TestRecoverFromLostQuorum loses two members of three for good (kill -9,
// data directories wiped) after a QoS 1/QoS 2 persistent workload, and
// recovers the survivor with `bollard cluster recover --at-next-start`
// (the Kubernetes procedure: the request written into the running,
// leaderless member, then its restart). The survivor serves alone, two
// empty members are added back and catch up by snapshot, the leader of
// the regrown cluster is killed, and the subscribers then drain every
// acknowledged message (history.Check).
//
// The survivor provably holds every acknowledged message: the publishers
// stop, the cluster goes quiet, and the survivor has applied the leader's
// whole log before the others die. (An acknowledgement needs a majority,
// which need not include the survivor: recovery keeps what the survivor
// holds, docs/durability.md.)
func TestRecoverFromLostQuorum(t *testing.T) {
	c := newCluster(t, 3, withSnapshots(200, 100))
	c.startAll()
	l := c.leader(60 * time.Second)
	w := workload.Start(t, c.addrs(), workload.Default)
	w.WaitAcked(150, 3*time.Minute)
	w.Stop()
	s := (l + 1) % 3 // the survivor: a follower
	var quiet clusterStatus
	since := time.Now()
	poll.Wait(t, time.Minute, 50*time.Millisecond, "the cluster to go quiet with the survivor caught up", func() bool {
		ls, err := c.members[l].status()
		if err != nil {
			return false
		}
		ss, err := c.members[s].status()
		if err != nil {
			return false
		}
		if ls.LastLog != quiet.LastLog {
			quiet, since = ls, time.Now()
		}
		return ls.Commit == ls.LastLog && ss.Applied >= ls.LastLog && time.Since(since) >= time.Second
	})
	acked := w.Acked()
	t.Logf("%d acknowledged; the leader %s is quiet at index %d; %s caught up", acked, c.members[l].id, quiet.LastLog, c.members[s].id)

	// Two members lost for good.
	lost := []int{l, 3 - l - s}
	for _, i := range lost {
		c.members[i].killNow()
		if err := os.RemoveAll(c.members[i].dir); err != nil {
			t.Fatal(err)
		}
	}
	// The survivor alone never leads.
	poll.Wait(t, 30*time.Second, 50*time.Millisecond, "the survivor to see no leader", func() bool {
		st, err := c.members[s].status()
		return err == nil && !st.Serving && st.Leader == ""
	})
	sv := c.members[s]
	members := sv.id + "=" + sv.raft + "=" + sv.mqtt
	// A running member's directory is refused...
	if out, err := c.bollard("cluster", "recover", "--data-dir", sv.dir, "--member-id", sv.id, "--members", members); err == nil {
		t.Fatalf("recover on a running member's directory succeeded:\n%s", out)
	} else if !strings.Contains(out, "recovery refused") {
		t.Errorf("recover on a running member: %v\n%s", err, out)
	}
	// ...and so is a configuration without this member.
	if out, err := c.bollard("cluster", "recover", "--data-dir", sv.dir, "--member-id", sv.id, "--members",
		"x=127.0.0.1:1", "--at-next-start"); err == nil || !strings.Contains(out, "does not include this member") {
		t.Errorf("a configuration without the member: %v\n%s", err, out)
	}
	if out, err := c.bollard("cluster", "recover", "--data-dir", sv.dir, "--member-id", sv.id, "--members", members, "--at-next-start"); err != nil {
		t.Fatalf("recover --at-next-start: %v\n%s", err, out)
	}
	before, err := sv.status()
	if err != nil {
		t.Fatal(err)
	}
	sv.killNow() // as a pod deletion would, but without a chance to leave
	out, err := c.bollard("cluster", "inspect", "--data-dir", sv.dir)
	if err != nil {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	var in struct {
		LastLogIndex   uint64 `json:"lastLogIndex"`
		LastLogTerm    uint64 `json:"lastLogTerm"`
		Members        []struct{ ID string }
		PendingRequest json.RawMessage `json:"pendingRequest"`
	}
	if err := json.Unmarshal([]byte(out), &in); err != nil {
		t.Fatalf("inspect's output: %v\n%s", err, out)
	}
	if in.LastLogIndex < quiet.LastLog || len(in.Members) != 3 || len(in.PendingRequest) == 0 {
		t.Errorf("inspect before the restart: %s", out)
	}
	// The two ways to read a survivor agree (docs/operations.md).
	if in.LastLogIndex != before.LastLog || in.LastLogTerm != before.LastLogTerm || before.LastLogTerm == 0 {
		t.Errorf("inspect says index %d term %d, /v1/cluster said index %d term %d", in.LastLogIndex, in.LastLogTerm, before.LastLog, before.LastLogTerm)
	}
	t0 := time.Now()
	c.start(s)
	if got := c.leader(time.Minute); got != s {
		t.Fatalf("%s serves, not the recovered %s", c.members[got].id, sv.id)
	}
	t.Logf("%s recovered and serves alone after %s", sv.id, time.Since(t0).Round(time.Millisecond))
	if !c.logContains(s, "RECOVERED FROM A LOST QUORUM") {
		t.Errorf("%s did not log its recovery", sv.id)
	}
	st, err := sv.status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 1 || st.Members[0].ID != sv.id || st.LastLog < quiet.LastLog {
		t.Errorf("the recovered member's status: %+v", st)
	}

	// The lost members come back empty, without bootstrap, and are added.
	c.noBootstrap = map[int]bool{lost[0]: true, lost[1]: true}
	for _, i := range lost {
		c.start(i)
		m := c.members[i]
		body, _ := json.Marshal(map[string]string{"id": m.id, "raftAddress": m.raft, "clientAddress": m.mqtt})
		if err := postJSON(sv.admin, "/v1/cluster/members", body); err != nil {
			t.Fatalf("adding %s back: %v", m.id, err)
		}
		c.following(i, s, 2*time.Minute)
		if !c.logContains(i, "installed a snapshot from the leader") {
			t.Errorf("%s caught up without the leader's snapshot", m.id)
		}
	}
	st, err = sv.status()
	if err != nil {
		t.Fatal(err)
	}
	var voters []string
	for _, m := range st.Members {
		if m.Voter {
			voters = append(voters, m.ID)
		}
	}
	if len(voters) != 3 {
		t.Fatalf("regrown configuration: %+v", st.Members)
	}

	// The regrown cluster survives its leader's death, and every
	// acknowledged message is delivered from the new leader.
	sv.killNow()
	nl := c.leaderOtherThan(s, time.Minute)
	t.Logf("%s killed; %s leads the regrown cluster", sv.id, c.members[nl].id)
	c.start(s)
	rep := w.Finish(3 * time.Minute)
	if uint64(rep.Acked) != acked {
		t.Errorf("the history counts %d acknowledgements, the publishers %d", rep.Acked, acked)
	}
}

// bollard runs the member binary with args and returns its combined
// output.
func (c *testCluster) bollard(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, c.bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func postJSON(admin, path string, body []byte) error {
	cl := http.Client{Timeout: 2 * time.Minute}
	resp, err := cl.Post("http://"+admin+path, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST %s: %s: %s", path, resp.Status, msg)
	}
	return nil
}
