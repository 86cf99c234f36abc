//go:build loadbench

package load

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestClusterMemory measures the memory of cluster members with many
// messages queued (issue 15's goals: a follower with 1M messages queued
// under 150 MB RSS; a member 1M messages behind catches up with bounded
// memory). In a 3-member cluster, one offline session receives
// LOAD_CLUSTER_QUEUE QoS 1 messages (default 1,000,000) while one
// follower is stopped; then the other follower's RSS is read (VmRSS, and
// its peak VmHWM), and the stopped one is started and catches up (by
// snapshot: the leader compacted its log long before), its peak RSS read
// once its applied index reached the leader's commit index.
func TestClusterMemory(t *testing.T) {
	queue := envInt(t, "LOAD_CLUSTER_QUEUE", 1_000_000)
	ctx := context.Background()
	bin, err := BuildBollard(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tg, err := NewBollardCluster(ClusterOptions{Binary: bin, Dir: t.TempDir(), Members: 3, MaxInflight: 128})
	if err != nil {
		t.Fatal(err)
	}
	c := tg.(*cluster)
	if _, err := c.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Stop(context.Background()) })
	if err := CreateSessions(ctx, c.Addr(), SessionSpec{Prefix: "mem", Count: 1, Filter: func(int) string { return "load/mem/#" }}); err != nil {
		t.Fatal(err)
	}
	follower, behind := (c.leader+1)%3, (c.leader+2)%3
	if err := c.members[behind].Stop(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	r, err := PublishAll(ctx, c.Addr(), PublishSpec{
		Publishers: 16, Messages: queue, Payload: payloadSize, Window: 20,
		Topics: func(p, _ int) []string { return []string{fmt.Sprintf("load/mem/%d", p)} },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages queued for one offline session in %s (%.0f msg/s, %d rejected)", r.Acked, time.Since(t0).Round(time.Millisecond), r.Rate(), r.Rejected)
	leader, err := clusterState(ctx, c.admins[c.leader])
	if err != nil {
		t.Fatal(err)
	}
	waitApplied(t, c.admins[follower], leader.Commit, 5*time.Minute)
	rss, hwm := procMemory(t, c.members[follower].PID())
	lrss, lhwm := procMemory(t, c.members[c.leader].PID())
	t.Logf("follower with %d messages queued: RSS %d MB (peak %d MB); leader RSS %d MB (peak %d MB)", r.Acked, rss>>20, hwm>>20, lrss>>20, lhwm>>20)
	if rss > 150<<20 {
		t.Errorf("follower RSS %d MB with %d messages queued, goal < 150 MB", rss>>20, r.Acked)
	}

	t1 := time.Now()
	if _, err := c.members[behind].Start(ctx); err != nil {
		t.Fatal(err)
	}
	pid := c.members[behind].PID()
	var peak int64
	waitApplied(t, c.admins[behind], leader.Commit, 10*time.Minute, func() {
		if _, h := procMemory(t, pid); h > peak {
			peak = h
		}
	})
	brss, bhwm := procMemory(t, pid)
	st, _ := clusterState(ctx, c.admins[behind])
	t.Logf("member %d entries behind caught up in %s (last snapshot %d): RSS %d MB, peak %d MB",
		leader.Commit, time.Since(t1).Round(time.Millisecond), st.LastSnapshot, brss>>20, max(bhwm, peak)>>20)
	if bhwm > 150<<20 {
		t.Errorf("a member catching up %d messages peaked at %d MB RSS, goal < 150 MB", r.Acked, bhwm>>20)
	}
}

// memberState is the part of GET /v1/cluster the test reads.
type memberState struct {
	Commit       uint64 `json:"commitIndex"`
	Applied      uint64 `json:"appliedIndex"`
	LastSnapshot uint64 `json:"lastSnapshotIndex"`
}

func clusterState(ctx context.Context, admin string) (memberState, error) {
	var s memberState
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/v1/cluster", nil)
	if err != nil {
		return s, err
	}
	resp, err := (&http.Client{Timeout: 2 * time.Second}).Do(req)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("GET /v1/cluster: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// waitApplied waits until the member at admin applied index, calling
// each (if any) at every look.
func waitApplied(t *testing.T, admin string, index uint64, d time.Duration, each ...func()) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, f := range each {
			f()
		}
		if s, err := clusterState(ctx, admin); err == nil && s.Applied >= index {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the member at %s did not apply index %d within %s", admin, index, d)
		case <-tick.C:
		}
	}
}

// procMemory reads a process's resident memory and its peak, in bytes.
func procMemory(t *testing.T, pid int) (rss, peak int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			peak = kb << 10
		}
	}
	return rss, peak
}
